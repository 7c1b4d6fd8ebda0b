"""Score a checkpoint (or a predictions file) on the DREAM 2022 test suite. All logic lives in src/."""

import hydra
from omegaconf import DictConfig

from src.cli_check import check_command_line
from src.entry import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    from src.evaluate_task import evaluate

    scores = run_task(evaluate, cfg)
    return None if not scores else scores.get("pearson_score")


if __name__ == "__main__":
    check_command_line("evaluate")  # a bad key or value: one line, exit 2, before Hydra makes a folder
    main()
