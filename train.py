"""Train one Prix Fixe combination (or sweep them with -m). All logic lives in src/."""

import hydra
from omegaconf import DictConfig

from src.cli_check import check_command_line
from src.entry import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from src.train_task import train

    summary = run_task(train, cfg)
    return None if not summary else summary.get("best_score")


if __name__ == "__main__":
    check_command_line("train")  # a bad key or value: one line, exit 2, before Hydra makes a folder
    main()
