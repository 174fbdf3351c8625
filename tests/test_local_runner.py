"""The local runner runs each task in the venv of its image, with kfp.local passing artifacts between them."""

import json

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact, Input, Output

from kfp_mlops import local_runner
from kfp_mlops.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def write_numbers(numbers: Output[Artifact]):
    import json

    import numpy

    with open(numbers.path, "w") as f:
        json.dump({"writer_numpy": numpy.__version__, "values": numpy.arange(5).tolist()}, f)


@dsl.component(base_image=image("monitor"), install_kfp_package=False)
def sum_numbers(numbers: Input[Artifact]) -> str:
    import json

    import numpy

    with open(numbers.path) as f:
        data = json.load(f)
    return json.dumps({**data, "reader_numpy": numpy.__version__, "sum": int(numpy.sum(data["values"]))})


@dsl.pipeline(name="two-images")
def two_images() -> str:
    return sum_numbers(numbers=write_numbers().output).output


def test_tasks_run_in_their_images_venvs_and_pass_an_artifact(tmp_path):
    local_runner.init(pipeline_root=tmp_path)
    with local_runner.image_venvs():
        result = json.loads(two_images().output)
    # data's venv has numpy 2, monitor's (alibi-detect) numpy 1: one interpreter could not hold both.
    assert result["writer_numpy"].startswith("2.")
    assert result["reader_numpy"].startswith("1.")
    assert result["sum"] == 10


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def foreign_image() -> str:
    return "unreachable"


def test_a_task_whose_image_has_no_venv_is_refused_with_the_reason(tmp_path):
    local_runner.init(pipeline_root=tmp_path)
    with local_runner.image_venvs(), pytest.raises(RuntimeError, match="not a kfp-mlops runtime image"):
        foreign_image()


def test_the_original_handler_is_restored(tmp_path):
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.SubprocessTaskHandler
    with local_runner.image_venvs():
        assert subprocess_task_handler.SubprocessTaskHandler is local_runner.ImageVenvTaskHandler
    assert subprocess_task_handler.SubprocessTaskHandler is original
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))


@dsl.component(base_image=image("data"), install_kfp_package=False)
def echo(text: str) -> str:
    return text


def test_an_input_naming_python3_reaches_the_task_unchanged(tmp_path):
    # kfp.local's own handler would replace "python3" inside this value with the interpreter's path.
    path = "/opt/venv/lib/python3.11/site-packages/model"
    local_runner.init(pipeline_root=tmp_path)
    with local_runner.image_venvs():
        assert echo(text=path).output == path
