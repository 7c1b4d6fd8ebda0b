"""Predicted effects of sequence variants (alt - ref) with a trained checkpoint. All logic lives in src/."""

import hydra
from omegaconf import DictConfig

from src.cli_check import check_command_line
from src.entry import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="variant_effect")
def main(cfg: DictConfig) -> None:
    from src.interpret_task import variant_effect

    run_task(variant_effect, cfg)


if __name__ == "__main__":
    check_command_line("variant_effect")  # a bad key or value: one line, exit 2, before Hydra makes a folder
    main()
