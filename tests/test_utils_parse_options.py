"""utils/parse_options.sh sourced by a small bash script."""

import subprocess

import pytest

SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
foo_bar=1
use_x=false
help_message="Usage: t.sh [options] <args>"
. {repo}/utils/parse_options.sh
echo "foo_bar=$foo_bar use_x=$use_x rest=$*"
"""


@pytest.fixture
def script(tmp_path, repo_root):
    s = tmp_path / "t.sh"
    s.write_text(SCRIPT.format(repo=repo_root))
    s.chmod(0o755)
    return s


def run(args, env):
    return subprocess.run(["bash", *map(str, args)], env=env, capture_output=True, text=True)


def test_dash_and_underscore(script, shell_env):
    assert run([script, "--foo-bar", "3", "x"], shell_env).stdout == "foo_bar=3 use_x=false rest=x\n"
    assert run([script, "--foo_bar", "4", "--use-x", "true"], shell_env).stdout == "foo_bar=4 use_x=true rest=\n"


def test_value_kept_verbatim(script, shell_env):
    p = run([script, "--foo_bar", 'a "b" $c'], shell_env)
    assert p.stdout == 'foo_bar=a "b" $c use_x=false rest=\n'


def test_unknown_option(script, shell_env):
    p = run([script, "--nope", "1"], shell_env)
    assert p.returncode == 1 and "--nope" in p.stderr


def test_bad_boolean(script, shell_env):
    p = run([script, "--use_x", "yes"], shell_env)
    assert p.returncode == 1 and "--use_x" in p.stderr and "true" in p.stderr


def test_help_and_config(script, shell_env, tmp_path):
    p = run([script, "--help"], shell_env)
    assert p.returncode == 0 and "Usage: t.sh" in p.stderr
    cfg = tmp_path / "c.conf"
    cfg.write_text("foo_bar=fromconfig\n")
    assert run([script, "--config", cfg], shell_env).stdout.startswith("foo_bar=fromconfig ")
    assert run([script, "--config", cfg, "--foo-bar", "cli"], shell_env).stdout.startswith("foo_bar=cli ")


def test_stops_at_first_positional(script, shell_env):
    assert run([script, "a", "--foo-bar", "2"], shell_env).stdout == "foo_bar=1 use_x=false rest=a --foo-bar 2\n"


def test_usage_status_is_kaldis_1_unless_the_script_sets_another(tmp_path, shell_env, repo_root):
    script = tmp_path / "s.sh"
    script.write_text(f"nj=1\n. {repo_root}/utils/parse_options.sh\necho $nj\n")
    p = run([script, "--bogus", "1"], shell_env)
    assert p.returncode == 1 and "--bogus" in p.stderr
    script.write_text(f"nj=1\n__po_usage_status=2\n. {repo_root}/utils/parse_options.sh\necho $nj\n")
    p = run([script, "--bogus", "1"], shell_env)
    assert p.returncode == 2 and "--bogus" in p.stderr
    p = run([script, "--__po_usage_status", "0"], shell_env)  # never an option
    assert p.returncode == 2 and "__po_usage_status" in p.stderr
    p = run([script, "--nj", "4"], shell_env)
    assert p.returncode == 0 and p.stdout == "4\n"
