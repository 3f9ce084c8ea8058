"""`wazoo shell` keeps zkCli's habits: the same commands, flags and output formats, `-c` for scripts with
a non-zero exit status on the first failure and zkCli's error messages on stderr. Runs against the target
server (wazoo or a real ZooKeeper: the shell is a client).
"""

import subprocess

import harness


def shell(srv, *cmds, args=()):
    argv = [str(harness.wazoo_bin()), "shell", "-s", srv.hosts]
    for c in cmds:
        argv += ["-c", c]
    argv += list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_scripted_session_prints_like_zkcli(server):
    code, out, err = shell(
        server,
        "create /sh-a hello",
        "create /sh-a/child",
        "ls /sh-a",
        "get /sh-a",
        "set -v 0 /sh-a v2",
        "stat /sh-a",
        "getAcl /sh-a",
        "create -e -s /sh-a/e- x",
        "ls -R /sh-a",
        "deleteall /sh-a",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Created /sh-a"
    assert "[child]" in lines
    assert "hello" in lines
    assert "dataVersion = 1" in lines and "numChildren = 1" in lines
    assert "'world,'anyone" in lines and ": cdrwa" in lines
    assert any(line.startswith("Created /sh-a/e-00000000") for line in lines)
    assert "/sh-a/child" in lines
    assert shell(server, "stat /sh-a")[0] == 1


def test_failures_exit_non_zero_with_zkcli_messages(server):
    code, _, err = shell(server, "get /sh-missing")
    assert code == 1 and "Node does not exist: /sh-missing" in err
    shell(server, "create /sh-b")
    code, _, err = shell(server, "create /sh-b")
    assert code == 1 and "Node already exists: /sh-b" in err
    code, _, err = shell(server, "set -v 7 /sh-b x")
    assert code == 1 and "version No is not valid : /sh-b" in err
    shell(server, "create /sh-b/c")
    code, _, err = shell(server, "delete /sh-b")
    assert code == 1 and "Node not empty: /sh-b" in err


def test_one_shot_trailing_command_like_zkcli(server):
    shell(server, "create /sh-c data")
    code, out, _ = shell(server, args=["get", "/sh-c"])
    assert code == 0 and out.strip() == "data"
