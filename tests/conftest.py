"""Fixtures shared by the engine, DDP and CLI tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: on a small shared CPU, more threads spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A per-module folder for generated datasets (the synthetic set is written there once)."""
    return str(tmp_path_factory.mktemp("data"))
