"""Every cookiecutter choice changes the generated output (no dead options)."""

from __future__ import annotations

import tomllib

from bakery import read_env_file, run_in


def dependencies(project) -> str:
    return " ".join(tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"])


def test_result_backend_django_db_uses_django_celery_results(bake):
    project = bake(result_backend="django-db")
    base = (project / "config/settings/base.py").read_text()
    assert 'CELERY_RESULT_BACKEND = "my_project.taskqueue.patches.django_celery_results.DatabaseBackend"' in base
    assert '"django_celery_results"' in base
    assert "django-celery-results" in dependencies(project)
    assert (project / "my_project/taskqueue/patches/django_celery_results.py").exists()


def test_result_backend_redis_uses_redis_with_the_broker_visibility_timeout(bake):
    project = bake(result_backend="redis")
    base = (project / "config/settings/base.py").read_text()
    # Its own database on REDIS_URL's server (config/redis_roles.py), unless CELERY_RESULT_BACKEND_URL says otherwise.
    assert 'env("CELERY_RESULT_BACKEND_URL", default=redis_roles.role_url(REDIS_URL, "results"))' in base
    assert "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {\n    **CELERY_BROKER_TRANSPORT_OPTIONS," in base
    assert "django_celery_results" not in base
    assert "django-celery-results" not in dependencies(project)
    assert not (project / "my_project/taskqueue/patches/django_celery_results.py").exists()


def test_result_backend_none_configures_no_backend(bake):
    project = bake(result_backend="none")
    base = (project / "config/settings/base.py").read_text()
    assert "CELERY_RESULT_BACKEND" not in base
    assert "django-celery-results" not in dependencies(project)


def test_flower_option_adds_or_removes_flower(bake):
    with_flower, without = bake(use_flower="y"), bake(use_flower="n")
    assert "flower:" in (with_flower / "Procfile").read_text()
    assert "flower" in dependencies(with_flower)
    assert "FLOWER_PASSWORD" in (with_flower / ".envs/.production/.django").read_text()
    assert "flower" not in (without / "Procfile").read_text()
    assert not (without / "config" / "flower.py").exists()
    assert "flower" not in dependencies(without)
    assert "FLOWER" not in (without / ".envs/.production/.django").read_text()


def test_sentry_option_adds_or_removes_sentry(bake):
    with_sentry, without = bake(use_sentry="y"), bake(use_sentry="n")
    production = (with_sentry / "config/settings/production.py").read_text()
    assert "CeleryIntegration(monitor_beat_tasks=True)" in production
    assert 'dsn=env("SENTRY_DSN")' in production
    assert "sentry-sdk" in dependencies(with_sentry)
    assert "SENTRY_DSN" in (with_sentry / ".envs/.production/.django").read_text()
    assert "sentry" not in (without / "config/settings/production.py").read_text()
    assert "sentry" not in dependencies(without)


def test_ci_tool_writes_only_the_chosen_ci_config(bake):
    github, gitlab, none = bake(ci_tool="github"), bake(ci_tool="gitlab"), bake(ci_tool="none")
    assert (github / ".github/workflows/ci.yml").exists()
    assert not (github / ".gitlab-ci.yml").exists()
    assert (gitlab / ".gitlab-ci.yml").exists()
    assert not (gitlab / ".github").exists()
    assert not (none / ".github").exists()
    assert not (none / ".gitlab-ci.yml").exists()


def test_timezone_and_domain_reach_the_settings(bake):
    project = bake(timezone="Europe/Paris", domain_name="shop.example.org")
    assert 'TIME_ZONE = "Europe/Paris"' in (project / "config/settings/base.py").read_text()
    assert "DJANGO_ALLOWED_HOSTS=shop.example.org" in (project / ".envs/.production/.django").read_text()


def test_broker_rabbitmq_declares_quorum_queues_and_leaves_out_everything_redis_broker_only(bake):
    redis, rabbitmq = bake(), bake(broker="rabbitmq")
    base = (rabbitmq / "config/settings/base.py").read_text()
    assert 'CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="amqp://guest:guest@localhost:5672//")' in base
    assert 'broker_rabbitmq.task_queue("default", TASK_DELIVERY_LIMIT)' in base
    assert '"confirm_publish": True' in base
    assert "visibility_timeout" not in base
    assert "patched_kombu" not in (rabbitmq / "config/celery_app.py").read_text()
    redis_only = (
        "my_project/taskqueue/patches/kombu.py",
        "my_project/taskqueue/broker_redis.py",
        "tests/taskqueue/test_broker_transport.py",
        "tests/taskqueue/test_checks_redis.py",
        # The benchmark runs on both brokers; only its Redis-command count (--herd) is Redis's.
        "tools/bench/herd.py",
        "tools/bench/stock_transport.py",
    )
    rabbitmq_only = (
        "config/broker_rabbitmq.py",
        "my_project/taskqueue/state_redis.py",
        "my_project/taskqueue/management/commands/declare_queues.py",
        "tools/rabbitmq_server.py",
        "compose/rabbitmq.conf",
        "docs/brokers.md",
        "tests/taskqueue/test_checks_rabbitmq.py",
        ".envs/.local/.rabbitmq",
        ".envs/.production/.rabbitmq",
        "tools/bench/scratch_rabbitmq.py",
        "tests/bench/test_bench_on_rabbitmq.py",
    )
    assert [path for path in redis_only if (rabbitmq / path).exists()] == []
    assert [path for path in rabbitmq_only if not (rabbitmq / path).exists()] == []
    assert [path for path in redis_only if not (redis / path).exists()] == []
    assert [path for path in rabbitmq_only if (redis / path).exists()] == []
    # The alternative modules replaced the Redis ones, and none is left beside them.
    assert "_broker_ok" in (rabbitmq / "my_project/health/views.py").read_text()
    assert "state_redis" in (rabbitmq / "my_project/health/views.py").read_text()
    assert sorted(path.name for path in rabbitmq.rglob("*_rabbitmq.py")) == [
        "broker_rabbitmq.py",
        "scratch_rabbitmq.py",
        "test_bench_on_rabbitmq.py",
        "test_checks_rabbitmq.py",
    ]
    assert sorted(path.name for path in redis.rglob("*_rabbitmq.py")) == []


def test_broker_rabbitmq_gives_each_environment_its_own_rabbitmq_user_and_the_compose_files_a_service(bake):
    project = bake(broker="rabbitmq")
    for environment in ("local", "production"):
        rabbitmq = read_env_file(project / f".envs/.{environment}/.rabbitmq")
        django = read_env_file(project / f".envs/.{environment}/.django")
        url = f"amqp://my_project:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672/my_project"
        assert django["CELERY_BROKER_URL"] == url, environment
        assert len(rabbitmq["RABBITMQ_DEFAULT_PASS"]) >= 32
        compose = project / ("docker-compose.yml" if environment == "local" else "docker-compose.production.yml")
        text = compose.read_text()
        assert "  rabbitmq:\n    image: rabbitmq:3.13-management" in text, environment
        assert f".envs/.{environment}/.rabbitmq" in text
        assert "rabbitmq_data:/var/lib/rabbitmq" in text
    assert read_env_file(project / ".env")["CELERY_BROKER_URL"] == "amqp://guest:guest@localhost:5672//"
    assert "python manage.py declare_queues" in (project / "compose/migrate").read_text()


EXAMPLE_NAMES = ("notifications", "reports", "REPORTS_API", "LOGIN_CODE_TTL", "examples")


def test_include_examples_n_leaves_out_the_example_apps_tasks_schedules_urls_settings_and_tests(bake):
    project = bake(include_examples="n")
    assert not (project / "my_project/examples").exists()
    assert not (project / "tests/examples").exists()
    for relative in ("config/settings/base.py", "config/settings/test.py", "config/urls.py"):
        text = (project / relative).read_text()
        assert [name for name in EXAMPLE_NAMES if name in text] == [], relative
    python = [path for path in project.rglob("*.py") if ".venv" not in path.parts]
    mentions = [str(path.relative_to(project)) for path in python if "examples." in path.read_text()]
    assert mentions == []


def test_include_examples_n_keeps_the_custom_user_model_and_the_platform(bake):
    project = bake(include_examples="n")
    assert 'AUTH_USER_MODEL = "users.User"' in (project / "config/settings/base.py").read_text()
    assert (project / "my_project/users/migrations/0001_initial.py").exists()
    assert (project / "my_project/taskqueue/schedules.py").exists()
    assert (project / "tests/taskqueue/test_worker.py").exists()


def test_include_examples_y_installs_the_example_apps(bake):
    base = (bake(include_examples="y") / "config/settings/base.py").read_text()
    assert '"my_project.examples.notifications"' in base
    assert '"my_project.examples.reports"' in base


def test_a_project_of_another_name_keeps_no_trace_of_the_default_one(bake, template_venv):
    """Every file names the project by its own slug: a module path, a package prefix or a docstring left at the
    default (my_project) would point a tool (the upstream canary, the contract inventory) at nothing. And a name
    longer than the default's still passes the project's lint (its line length)."""
    project = bake(project_name="Acme Billing", use_kubernetes="y", ci_tool="gitlab")
    assert project.name == "acme_billing"
    leftovers = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file()
        and ".git" not in path.parts
        and any(name in path.read_text(errors="ignore") for name in ("my_project", "My Project", "my-project"))
    ]
    assert leftovers == []
    run_in(project, "ruff", "check", ".", venv=template_venv)
    run_in(project, "ruff", "format", "--check", ".", venv=template_venv)
