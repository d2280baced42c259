"""Several machines, without starting any: the three settings (YAML, command line, validation in plain
words), what torch.distributed.run is given, the command the app shows for each other machine, and a
gone machine said in both languages."""

from __future__ import annotations

import pytest

from studio.cli import build_parser
from studio.config import StudioConfig, merge
from studio.errors import ConfigError


def machines(**training) -> StudioConfig:
    return merge(StudioConfig(), {"training": training})


def test_the_settings_round_trip_through_yaml_and_come_from_the_command_line():
    from studio.commands.train import build_config
    cfg = machines(nnodes=3, node_rank=2, master="10.0.0.5:29500", gpus=2)
    assert StudioConfig.from_yaml(cfg.to_yaml()) == cfg
    args = build_parser().parse_args(["train", "--nnodes", "3", "--node-rank", "2", "--master", "10.0.0.5:29500",
                                      "--gpus", "2"])
    t = build_config(args).training
    assert (t.nnodes, t.node_rank, t.master, t.gpus) == (3, 2, "10.0.0.5:29500", 2)
    assert build_config(build_parser().parse_args(["train", "training.nnodes=3"])).training.nnodes == 3


@pytest.mark.parametrize("training,code,words", [
    ({"nnodes": 2, "node_rank": 2, "master": "h:1"}, "config.node_rank_range", "numbered 0 to 1"),
    ({"nnodes": 1, "node_rank": 1}, "config.node_rank_range", "training.node_rank is 1"),
    ({"nnodes": 2}, "config.no_master", "set training.master to ADDR:PORT"),
    ({"nnodes": 2, "master": "10.0.0.5"}, "config.bad_master", "not an address and a port"),
    ({"nnodes": 2, "master": "10.0.0.5:0"}, "config.bad_master", "1 to 65535"),
    ({"nnodes": 2, "master": "10.0.0.5:99999"}, "config.bad_master", "ADDR:PORT"),
    ({"nnodes": 2, "master": "my host:29500"}, "config.bad_master", "ADDR:PORT"),
])
def test_wrong_machine_settings_are_refused_in_plain_words(training, code, words):
    with pytest.raises(ConfigError) as e:
        machines(**training).validate()
    assert e.value.code == code and words in str(e.value)
    assert e.value.render("zh")[0] != e.value.message          # said in Chinese too


@pytest.mark.parametrize("master", ["192.168.1.10:29500", "trainbox.local:1234", "[::1]:29500", "localhost:80"])
def test_good_addresses_pass(master):
    machines(nnodes=2, node_rank=1, master=master).validate()


def test_torch_distributed_run_gets_a_rendezvous_at_the_main_machine_numbered_by_node_rank():
    from studio.training.distributed import plan
    from studio.training.launcher import worker_command
    from studio.training.nodes import launch_args
    cfg = machines(nnodes=2, node_rank=1, master="10.0.0.5:29500")
    args = launch_args(cfg)
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-backend=static", "--rdzv-endpoint=10.0.0.5:29500",
            "--max-restarts=0"} <= set(args)
    p = plan(cfg, found=0)        # one CPU process on each machine: still torch.distributed.run, DDP over gloo
    assert (p.processes, p.strategy, p.subprocess) == (1, "ddp", True)
    cmd = worker_command("/run", 1, cfg=cfg)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=1" in cmd
    assert launch_args(machines(nnodes=2, master="[::1]:29500"))[3] == "--rdzv-endpoint=[::1]:29500"


def test_the_app_shows_the_command_of_each_other_machine():
    from studio.ui import views
    from studio.ui.services import Services
    cfg = machines(nnodes=3, master="10.0.0.5:29500", gpus=2)
    commands = Services.machine_commands(cfg)
    assert commands == ["studio train --nnodes 3 --node-rank 1 --master 10.0.0.5:29500 --gpus 2",
                        "studio train --nnodes 3 --node-rank 2 --master 10.0.0.5:29500 --gpus 2"]
    text = views.machine_commands(commands, "en")
    assert "machine 3 (node rank 2)" in text and text.splitlines()[-1] == commands[-1]
    assert "第 2 台电脑" in views.machine_commands(commands, "zh")
    assert Services.machine_commands(StudioConfig()) == []
    assert "only" in views.machine_commands([], "en")
    assert Services.machine_commands(machines(nnodes=2, master="nowhere")) is None
    assert "ADDR:PORT" in views.machine_commands(None, "en")
    # the global batch counts every machine's GPUs: 2 rows x 2 GPUs x 3 machines
    assert "**12**" in views.global_batch(merge(cfg, {"training": {"batch_size": 2, "grad_accum": 1}}), 2, "en")


def test_a_gone_machine_is_named_in_both_languages():
    from studio.training.node_link import NODE_MARK
    from studio.training.process_failures import explain_exit
    log = ("RuntimeError: Connection closed by peer\n"
           f"{NODE_MARK} node=1 host=box-2: its processes ended (they were killed, or the machine or the network "
           "to it failed).\nSTUDIO-RANK-ERROR rank=0 of 2: RuntimeError: Connection closed by peer\n")
    failure = explain_exit(log, 1, 1, {"state": "failed"}, "/run/train.log", several=True)
    assert failure.code == "training.node_failed"
    assert failure.message.startswith("Machine 2 (node rank 1, box-2) left the run: its processes ended")
    assert failure.render("zh")[0].startswith("第 2 台电脑（node rank 1，box-2）退出了这次运行")


def test_another_machine_refuses_to_join_with_a_different_data_file(tmp_path):
    from studio.training.node_link import differences, machine_facts
    data = tmp_path / "faq.jsonl"
    data.write_text('{"a": 1}\n', encoding="utf-8")
    main = machine_facts(str(data))
    assert differences(main, str(data)) == []
    data.write_text('{"a": 2}\n', encoding="utf-8")
    assert "differs from the main machine's" in differences(main, str(data))[0]
    data.unlink()
    assert "is not on this machine" in differences(main, str(data))[0]
    assert "studio version" in differences({**main, "data_sha": "", "studio": "0.0.1"}, "")[0]


def test_a_run_of_several_machines_is_refused_for_resume_in_plain_words(tmp_path):
    from studio.errors import ResumeError
    from studio.runs import RunFolder
    from studio.training.resume import plan_resume
    run = RunFolder.create(machines(nnodes=2, master="10.0.0.5:29500"), str(tmp_path / "run"))
    with pytest.raises(ResumeError) as e:
        plan_resume(run.path)
    assert e.value.code == "resume.several_machines" and "2 machines" in str(e.value)
