"""Progress bars fit the terminal: at any width the line is no wider than the console, and the
numbers shown are whole (fields are left out, and the label shortened, instead)."""

import io

import pytest
from rich.console import Console

from vifit.progress import fitted_progress

FIELDS = [("ELBO {task.fields[elbo]}", 15), ("{task.fields[rate]} steps/s", 15)]


@pytest.mark.parametrize("width", [30, 40, 60, 80, 100, 160])
def test_one_line_within_the_width(width):
    console = Console(width=width, file=io.StringIO(), record=True)
    progress, label = fitted_progress("a_long_model_name · realnvp · reparam", 10_000, FIELDS,
                                      console)
    task = progress.add_task(label, total=10_000, elbo="-31.35", rate="17,841")
    progress.update(task, completed=4600)
    console.print(progress.make_tasks_table(progress.tasks))
    lines = console.export_text().rstrip("\n").splitlines()
    assert len(lines) == 1 and len(lines[0]) <= width
    assert "4600/10000" in lines[0]
    for shown in ("-31.35", "17,841"):  # a field is either whole or absent
        assert shown in lines[0] or shown[:3] not in lines[0]
    if width >= 100:  # room for everything: nothing is left out
        assert "a_long_model_name · realnvp · reparam" in lines[0] and "steps/s" in lines[0]
