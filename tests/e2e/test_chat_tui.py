"""`freeway chat` in a real terminal: tmux runs a shell at a fixed size, the test types into
it and reads the screen. The mock upstream's `coding-agent` model plays the coding task of
test_agents.py; its agent here asks before running commands (`auto-edit`), so the test answers
the approval inline, then reopens the session from the picker and continues it, quits with
Ctrl-D, and checks that the shell got its terminal back as it was."""

import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import FREEWAY_BIN, write_config
from test_agents import cli_env, make_repo

FIXED = "def add(a, b):\n    return a + b\n"
WIDTH, HEIGHT = 120, 32


class Tmux:
    """One tmux server of its own (its own socket), running one shell."""

    def __init__(self, tmp):
        self.socket = f"freeway-e2e-{os.getpid()}"
        self.tmp = tmp
        env = cli_env()
        env.update(PS1="$ ", HISTFILE="/dev/null", TERM="xterm-256color")
        self.run(
            "new-session", "-d", "-s", "chat", "-x", str(WIDTH), "-y", str(HEIGHT),
            "bash --norc --noprofile",
            env=env,
        )

    def run(self, *args, env=None):
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=env or cli_env(),
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "chat", *keys)

    def type(self, text):
        self.run("send-keys", "-t", "chat", "-l", text)

    def screen(self, escapes=False):
        return self.run("capture-pane", "-t", "chat", "-p", *(["-e"] if escapes else []))

    def pane(self, what):
        return self.run("display-message", "-t", "chat", "-p", what).strip()

    def wait_for(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the screen:\n{screen}")
            time.sleep(0.1)

    def shell(self, command, marker):
        """Runs `command` in the shell and waits for `marker` it prints."""
        self.type(command)
        self.keys("Enter")
        return self.wait_for(marker)

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def chat_command(config, repo, agent):
    args = [FREEWAY_BIN, "chat", "--config", config, "--cwd", repo, "--agent", agent]
    return " ".join(shlex.quote(str(a)) for a in args)


@pytest.fixture
def tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    t = Tmux(tmp_path)
    yield t
    t.close()


def test_chat_runs_a_task_answers_an_approval_and_gives_the_terminal_back(
    mock_upstream, tmp_path, tmux
):
    workspace = tmp_path / "workspace"
    repo = make_repo(workspace / "repo")
    config = write_config(
        tmp_path,
        mock_upstream,
        f"""
[sandbox]
workspace = "{workspace}"
on_missing = "degrade"
default_timeout_ms = 20000

[[agents]]
name = "coder-openai"
model = "openai/coding-agent"
approval = "auto-edit"
max_steps = 10

[[agents]]
name = "hanger"
model = "claude/hang-midstream"
""",
    )
    before = tmp_path / "stty-before"
    after = tmp_path / "stty-after"
    tmux.shell(f"stty -g > {before}; echo saved-$((40 + 2))", "saved-42")

    tmux.type(f"{chat_command(config, repo, 'coder-openai')}; echo chat-exited-$?")
    tmux.keys("Enter")
    screen = tmux.wait_for("new session · coder-openai · openai/coding-agent")
    assert tmux.pane("#{alternate_on}") == "1", screen
    assert "Ctrl-D quit" in screen

    tmux.type("fix the failing test")
    tmux.keys("Enter")
    # Reads and the edit run on their own (auto-edit); the command waits for a key.
    screen = tmux.wait_for("allow bash")
    assert "› fix the failing test" in screen
    assert '→ read_file {"path":"test_calc.py"}' in screen
    assert '→ read_file {"path":"calc.py"}' in screen
    assert re.search(r"✓ read_file \(\d+ ms\)", screen), screen
    assert re.search(r"✓ edit_file \(\d+ ms\)", screen), screen
    assert '→ bash {"command":"python3 test_calc.py"}' in screen
    assert "waiting for approval" in screen
    assert (repo / "calc.py").read_text() == FIXED
    # While the turn runs, typing goes nowhere: only y / n (and Ctrl-C) count.
    tmux.type("x")
    tmux.keys("y")

    screen = tmux.wait_for("Fixed add() in calc.py: it subtracted.")
    assert re.search(r"✓ bash \(\d+ ms\)", screen), screen
    assert "│ ok: 2 + 3 == 5" in screen, "the command's output streams into the transcript"
    session = re.search(r"(ses_[0-9A-Za-z]+) · coder-openai", screen)
    assert session, screen
    session = session.group(1)
    assert " 4 steps · " in screen, screen
    assert "running…" not in screen
    # NO_COLOR (set by cli_env): attributes, no colors.
    colored = tmux.screen(escapes=True)
    assert not re.search(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)", colored), colored

    # The picker reopens the session from the store; the next message continues it.
    tmux.keys("C-o")
    screen = tmux.wait_for("sessions · ↑↓ Enter opens")
    assert session in screen
    tmux.keys("Enter")
    screen = tmux.wait_for(f"session {session} · fix the failing test")
    assert "Fixed add() in calc.py: it subtracted." in screen, "the transcript is replayed"
    tmux.type("what was wrong?")
    tmux.keys("Enter")
    screen = tmux.wait_for("You asked: what was wrong?")
    assert f"{session} · coder-openai" in screen
    assert " 5 steps · " in screen, screen

    tmux.keys("C-d")
    screen = tmux.wait_for("chat-exited-0")
    assert tmux.pane("#{alternate_on}") == "0", screen
    assert tmux.pane("#{cursor_flag}") == "1", "the cursor is shown again"
    tmux.shell(f"stty -g > {after}; echo saved-$((40 + 3))", "saved-43")
    assert after.read_text() == before.read_text(), "raw mode is off again"

    # Ctrl-C aborts the running step (the model hangs mid-answer), not the chat; idle, it quits.
    tmux.type(f"clear; {chat_command(config, repo, 'hanger')}; echo again-exited-$?")
    tmux.keys("Enter")
    tmux.wait_for("new session · hanger")
    tmux.type("hello there")
    tmux.keys("Enter")
    tmux.wait_for("running…")
    tmux.keys("C-c")
    tmux.wait_for("\naborted\n")
    # "aborted" comes with the session's idle event; the chat is idle once the turn's task has
    # ended too, which may be drawn a frame later on a loaded machine.
    screen = tmux.wait_for("Enter send", timeout=10)
    assert "\naborted\n" in screen, "the chat is idle again, the abort still shown"
    assert tmux.pane("#{alternate_on}") == "1", "and still open"
    tmux.keys("C-c")
    tmux.wait_for("again-exited-0")
    assert tmux.pane("#{alternate_on}") == "0"
