"""tools/upstream/overrides.py: the upstream methods the patches override, and their source in another version."""

import textwrap

from tools.upstream.overrides import method_source, overrides


{% if cookiecutter.broker == "rabbitmq" -%}
def test_the_overrides_are_found_and_none_is_kombus_whose_transport_is_not_patched_on_rabbitmq():
    found = {override.upstream for override in overrides()}
    assert "celery.worker.request.Request.on_timeout" in found, found
    assert "django_celery_beat.schedulers.DatabaseScheduler.reserve" in found, found
    assert not any(name.startswith("kombu.") for name in found), found
{%- else -%}
def test_every_override_the_kombu_patch_documents_is_found_from_the_classes():
    found = {override.upstream for override in overrides() if override.distribution == "kombu"}
    # The ones its docstring asks a reader to re-read on an upgrade (taskqueue/patches/kombu.py).
    documented = {
        f"kombu.transport.redis.{name}"
        for name in (
            "Channel._brpop_start",
            "Channel._brpop_read",
            "Channel.close",
            "Channel.basic_consume",
            "Channel.basic_cancel",
            "Channel._connparams",
            "QoS.append",
            "QoS.restore_visible",
        )
    }
    assert documented <= found, documented - found
    assert all(name.startswith("kombu.transport.redis.") for name in found), found
{%- endif %}


def test_a_methods_source_is_read_from_a_package_tree_and_a_missing_one_is_none(tmp_path):
    package = tmp_path / "upstreampkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod").with_suffix(".py").write_text(
        textwrap.dedent(
            """
            class Channel:
                def close(self):
                    return 1
            """
        )
    )
    assert method_source(tmp_path, "upstreampkg.mod", "Channel", "close") == "    def close(self):\n        return 1"
    assert method_source(tmp_path, "upstreampkg.mod", "Channel", "open") is None
    assert method_source(tmp_path, "upstreampkg.gone", "Channel", "close") is None
