"""prixfixe's Hydra sweeper (``hydra/sweeper=halving``, the default of ``conf/train.yaml``).

Hydra finds sweepers only in the ``hydra_plugins`` namespace package, hence this folder. Without
``sweep.halving`` set it is Hydra's basic sweeper; with it, it runs the rungs of successive halving
(:mod:`src.sweep.halving_sweep`). Kept light: Hydra imports it on every start.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class HalvingSweeper(BasicSweeper):
    """Hydra's basic sweeper, with successive halving over the rungs when ``sweep.halving.eta/rungs`` are set."""

    def sweep(self, arguments: list[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from src.errors import ConfigError
        from src.sweep.halving import halving_plan
        from src.sweep.halving_sweep import HalvingStalled, run_halving
        from src.sweep.identity import identity_overrides
        from src.sweep.ledger import COMBINATION_KEYS

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        config = self.config
        try:
            plan = None if config.get("dry_run") else halving_plan(config)
        except ConfigError as err:  # before any job starts: one line, exit status 2
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        if plan is None:
            return super().sweep(arguments)

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [
            [o for o in job if not o.startswith("sweep.halving.rung=")]
            for batch in self.split_arguments(overrides, None)
            for job in batch
        ]
        self.validate_batch_is_legal(jobs)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / "multirun.yaml")
        exclude = [
            k for k in (config.hydra.job.config.override_dirname.exclude_keys or []) if k not in COMBINATION_KEYS
        ]
        choices = OmegaConf.to_container(config.hydra.runtime.choices) if config.hydra.runtime.choices else {}
        identities = [identity_overrides(job, exclude=exclude, choices=choices) for job in jobs]
        returns: list[Any] = []
        next_index = [0]

        def launch(batch: list[list[str]]) -> None:
            results = self.launcher.launch(batch, initial_job_idx=next_index[0])
            next_index[0] += len(batch)
            for result in results:
                _ = result.return_value  # re-raises what a job raised past the ledger
            returns.append(results)

        settings = config.sweep
        try:
            run_halving(
                sweep_dir,
                plan,
                jobs,
                identities,
                launch,
                poll_s=float(settings.halving.get("poll_s") or 10.0),
                claim_timeout=float(settings.get("claim_timeout") or 600.0),
            )
        except ConfigError as err:  # a resumed sweep with another eta or rungs, before any job started
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except HalvingStalled as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        return returns
