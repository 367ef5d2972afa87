"""`dexndm-train` flags come from the settings dataclasses: defaults, help and values cannot drift from them."""
from dataclasses import fields

import pytest

from dexndm_training import cli, config_flags
from dexndm_training.bc import BCConfig
from dexndm_training.dynamics import DynamicsConfig
from dexndm_training.env import EnvConfig
from dexndm_training.gait import SearchConfig
from dexndm_training.mpc import MPCConfig
from dexndm_training.ndm_data import ReplayConfig, RolloutConfig, SuiteConfig
from dexndm_training.ppo import PPOConfig
from dexndm_training.residual import ResidualConfig
from dexndm_training.sysid import SysIdConfig
from dexndm_training.tracking import TrackingConfig

#: subcommand, the arguments it requires, and (dataclass, fields it does not take from flags) pairs.
CASES = [
    ("bc", ["--out", "o", "--datasets", "d1", "d2"], [(BCConfig, ())]),
    ("ppo", ["--run-dir", "o"], [(EnvConfig, cli.ENV_SKIP), (PPOConfig, ("seed",))]),
    ("collect", ["--policy", "zero", "--out", "o"], [(EnvConfig, cli.ENV_SKIP)]),
    ("gait", ["--out", "o"], [(EnvConfig, cli.ENV_SKIP + ("num_envs",)), (SearchConfig, ("env", "seed"))]),
    ("mpc", ["--out", "o"], [(MPCConfig, ("seed", "threads"))]),
    ("sysid", ["--out", "o"], [(SysIdConfig, ("probe",))]),
    ("dynamics", ["--out", "o", "--datasets", "d1"], [(DynamicsConfig, ("role",))]),
    ("residual", ["--out", "o", "--datasets", "d1", "--dynamics", "m"], [(ResidualConfig, ())]),
    ("tracking", [], [(TrackingConfig, ())]),
    ("ndm-data rollouts", ["--policy", "zero", "--out", "o"], [(RolloutConfig, ())]),
    ("ndm-data replay", ["--out", "o"], [(ReplayConfig, ())]),
    ("ndm-data suite", ["--policy", "zero", "--out", "o"], [(SuiteConfig, ())]),
]
GIVEN = {"datasets": ["d1", "d2"], "dynamics": "m"}


def parse(command: str, argv: list[str]):
    return cli.build_parser().parse_args(command.split() + argv)


@pytest.mark.parametrize("command,required,configs", CASES, ids=[c[0] for c in CASES])
def test_every_field_is_a_flag_whose_default_is_the_dataclass_default(command, required, configs):
    args = parse(command, required)
    for cls, skip in configs:
        got = config_flags.values(args, cls, skip=skip)
        defaults = cls()
        want = {f.name: getattr(defaults, f.name) for f in fields(cls) if f.name not in skip}
        for name in set(want) & set(GIVEN):
            want[name] = got[name]  # required here: given on the command line above
        assert got == want, f"{command}: flags differ from {cls.__name__}"


def test_the_drifted_defaults_of_issue_14_now_come_from_the_dataclasses():
    args = parse("ppo", ["--run-dir", "o"])
    assert args.save_interval == PPOConfig().save_interval and args.num_envs == EnvConfig().num_envs


def test_flag_values_reach_the_config_with_their_types():
    args = parse("bc", ["--out", "o", "--datasets", "a", "--width", "32", "--no-only-successful", "--lr", "0.5"])
    cfg = BCConfig(**config_flags.values(args, BCConfig))
    assert (cfg.width, cfg.only_successful, cfg.lr, cfg.datasets) == (32, False, 0.5, ["a"])
    args = parse("sysid", ["--out", "o", "--init-std", "1", "2", "3", "--wrists", "palm_down"])
    cfg = SysIdConfig(**config_flags.values(args, SysIdConfig, skip=("probe",)))
    assert cfg.init_std == (1.0, 2.0, 3.0) and cfg.wrists == ("palm_down",)
    args = parse("ppo", ["--run-dir", "o", "--steps-per-env", "8", "--actor-hidden", "16", "16", "16"])
    assert config_flags.values(args, PPOConfig, skip=("seed",))["num_steps_per_env"] == 8
    assert args.actor_hidden == [16, 16, 16]
    with pytest.raises(SystemExit):  # choices from the module's own table
        parse("dynamics", ["--out", "o", "--datasets", "d", "--grouping", "elbow"])
    with pytest.raises(SystemExit):  # a required field
        parse("bc", ["--out", "o"])


def test_help_is_the_fields_doc_comment():
    docs = config_flags.field_docs(SysIdConfig)
    assert docs["smoothing"] == "Weight of the previous mean/std in each CEM update."  # `#:` above the field
    assert config_flags.field_docs(BCConfig)["q_noise"].startswith("rad, uniform +-")  # at the end of its line
    assert "min_std" not in docs  # no comment, no invented doc
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["bc"].format_help()
    assert "rad, uniform +- on observed joint angles" in " ".join(help_text.split())
