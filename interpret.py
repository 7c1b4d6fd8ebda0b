"""Read what a trained model learned: per-base scores (ISM, attributions) or motif effects. All logic lives in src/."""

import hydra
from omegaconf import DictConfig

from src.cli_check import check_command_line
from src.entry import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="interpret")
def main(cfg: DictConfig) -> None:
    from src.interpret_task import interpret

    run_task(interpret, cfg)


if __name__ == "__main__":
    check_command_line("interpret")  # a bad key or value: one line, exit 2, before Hydra makes a folder
    main()
