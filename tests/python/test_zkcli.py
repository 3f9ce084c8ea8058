"""ZooKeeper's own Java CLI (Debian's zkCli.sh, 3.8) drives the server through scripted sessions fed on
stdin (one JVM per session): create (plain, ephemeral, sequential), ls (plain, -s, -R), get (-s), set
(-v), stat, delete, deleteall, getAcl/setAcl with addauth, sync, getAllChildrenNumber, getEphemerals, and
the error texts the CLI derives from the server's error codes. Also the one-shot form
``zkCli.sh -server HOST:PORT cmd args``. The output text is what a zkCli user sees.
"""

import os
import re
import shutil
import subprocess

import pytest

import harness
from zkwire import digest_id


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory(tick_time=500, name="zkcli")


def zkcli(srv, script: str = None, args=(), timeout=90) -> str:
    if not harness.ZKCLI.exists() or shutil.which("java") is None:
        pytest.fail(f"{harness.ZKCLI} or java missing: run scripts/install-test-deps.sh", pytrace=False)
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
    cmd = ["bash", str(harness.ZKCLI), "-server", srv.hosts, *args]
    inp = None if script is None else script.strip() + "\nquit\n"
    p = subprocess.run(cmd, input=inp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=env)
    out = "\n".join(l for l in p.stdout.splitlines() if not l.startswith("SLF4J:"))
    return out


def assert_in_order(out: str, expected):
    """Each expected item (str = exact line, re.Pattern = line regex) appears on a line after the previous."""
    lines = out.splitlines()
    pos = 0
    for exp in expected:
        for i in range(pos, len(lines)):
            line = lines[i].rstrip()
            if (isinstance(exp, str) and line == exp) or (not isinstance(exp, str) and exp.fullmatch(line)):
                pos = i + 1
                break
        else:
            raise AssertionError(f"expected line {exp!r} (after line {pos}) not found in zkCli output:\n{out}")


STAT_LINES = ["cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion", "aclVersion",
              "ephemeralOwner", "dataLength", "numChildren"]


def stat_block(**fields):
    """Regexes for the 11 stat lines; given fields must match exactly."""
    out = []
    for name in STAT_LINES:
        if name in fields:
            out.append(re.compile(re.escape(f"{name} = {fields[name]}")))
        else:
            out.append(re.compile(re.escape(name) + r" = .+"))
    return out


def test_zkcli_scripted_session_crud_ls_get_set_stat_getacl_deleteall(srv):
    out = zkcli(srv, """
create /zkcli hello
create /zkcli/child x
create -s /zkcli/seq-
ls /
ls /zkcli
get /zkcli
set /zkcli world
stat /zkcli
get -s /zkcli
getAcl /zkcli
delete /zkcli/child
ls /zkcli
deleteall /zkcli
ls /
""")
    assert_in_order(out, [
        "Created /zkcli",
        "Created /zkcli/child",
        "Created /zkcli/seq-0000000001",
        "[zkcli, zookeeper]",
        "[child, seq-0000000001]",
        "hello",
        *stat_block(dataVersion=1, cversion=2, aclVersion=0, ephemeralOwner="0x0", dataLength=5, numChildren=2),
        "world",
        *stat_block(dataVersion=1, numChildren=2),
        "'world,'anyone",
        ": cdrwa",
        "[seq-0000000001]",
        "[zookeeper]",
    ])
    czxid = re.search(r"cZxid = (0x[0-9a-f]+)", out).group(1)
    mzxid = re.search(r"mZxid = (0x[0-9a-f]+)", out).group(1)
    assert int(mzxid, 16) > int(czxid, 16) > 0


def test_zkcli_ephemeral_sequential_and_listing_options(srv):
    out = zkcli(srv, """
create /zkl
create /zkl/a 1
create /zkl/a/b 2
create -e /zkl/eph
create -e -s /zkl/es-
ls -s /zkl
ls -R /zkl
stat /zkl/eph
getAllChildrenNumber /zkl
getEphemerals /zkl
sync /zkl
""")
    assert_in_order(out, [
        "Created /zkl",
        "Created /zkl/a",
        "Created /zkl/a/b",
        "Created /zkl/eph",
        "Created /zkl/es-0000000002",
        "[a, eph, es-0000000002]",
        *stat_block(numChildren=3, cversion=3, dataVersion=0),
        "/zkl", "/zkl/a", "/zkl/eph", "/zkl/es-0000000002", "/zkl/a/b",
        re.compile(r"ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*"),
        "4",
        re.compile(r"\[/zkl/(eph, /zkl/es-0000000002|es-0000000002, /zkl/eph)\]"),
        "Sync is OK",
    ])
    # The ephemerals went away with the CLI's session.
    out2 = zkcli(srv, "ls /zkl\ndeleteall /zkl\nls /zkl")
    assert_in_order(out2, ["[a]", re.compile(r".*Node does not exist: /zkl")])


def test_zkcli_reports_server_errors(srv):
    out = zkcli(srv, """
create /zke
create /zke/c
create /zke
delete /zke
set -v 7 /zke x
create /zke/c/../d
create -e /zke/eph
create /zke/eph/child
""")
    assert_in_order(out, [
        "Created /zke",
        "Created /zke/c",
        "Node already exists: /zke",
        "Node not empty: /zke",
        "version No is not valid : /zke",
        re.compile(r".*(Path must not contain|relative paths not allowed|Invalid path).*"),
        "Created /zke/eph",
        re.compile(r".*(Ephemerals cannot have children|NoChildrenForEphemerals).*"),
    ])
    zkcli(srv, "deleteall /zke")


def test_zkcli_digest_acls_with_addauth(srv):
    hashed = digest_id("cli", "pw")
    out = zkcli(srv, f"""
addauth digest cli:pw
create /zka secret
setAcl /zka auth:cli:pw:cdrwa
getAcl /zka
create /zka2 open digest:{hashed}:ra
getAcl /zka2
get /zka
""")
    user, h = hashed.split(":")
    assert_in_order(out, [
        "Created /zka",
        f"'digest,'{user}:{h}",
        ": cdrwa",
        "Created /zka2",
        f"'digest,'{user}:{h}",
        ": ra",
        "secret",
    ])
    denied = zkcli(srv, "get /zka\nset /zka x\nls /zka")
    assert denied.count("Insufficient permission : /zka") >= 2, denied
    su = zkcli(srv, f"addauth digest {harness.SUPER_USER}:{harness.SUPER_PASSWORD}\nget /zka\n"
                    "delete /zka\ndelete /zka2\nls /")
    assert_in_order(su, ["secret", "[zookeeper]"])


def test_zkcli_one_shot_command_arguments(srv):
    zkcli(srv, "create /oneshot data")
    out = zkcli(srv, args=["get", "/oneshot"])
    assert "data" in out.splitlines()
    out = zkcli(srv, args=["ls", "/"])
    # zkCli's watcher thread prints the connection event at any moment, even in the middle of the
    # listing ("[" / "WatchedEvent ..." / "oneshot, zookeeper]"); drop those lines first.
    listing = "".join(line for line in out.splitlines()
                      if not line.startswith(("WATCHER::", "WatchedEvent")) and line.strip())
    assert re.search(r"\[.*oneshot.*zookeeper\]", listing), out
    zkcli(srv, args=["delete", "/oneshot"])
