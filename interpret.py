"""Read what a trained model learned: per-base scores (ISM, attributions) or motif effects. All logic lives in src/."""

import hydra
from omegaconf import DictConfig

from src.entry import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="interpret")
def main(cfg: DictConfig) -> None:
    from src.interpret_task import interpret

    run_task(interpret, cfg)


if __name__ == "__main__":
    main()
