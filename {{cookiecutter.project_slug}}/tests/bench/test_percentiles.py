from tools.bench.workloads import percentile


def test_percentile_is_the_nearest_rank_sample():
    samples = [float(value) for value in range(1, 101)]  # 1..100, shuffled order must not matter
    samples.reverse()
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
