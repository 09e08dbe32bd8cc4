"""``birdbalance completion bash|zsh|fish``: the shell's completion script."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from birdbalance.cli.root import main

SHELLS = ("bash", "zsh", "fish")


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print SHELL's completion script for birdbalance (commands, options, choices).

    \b
    bash: birdbalance completion bash > ~/.local/share/bash-completion/completions/birdbalance
    zsh:  birdbalance completion zsh > "${fpath[1]}/_birdbalance"
    fish: birdbalance completion fish > ~/.config/fish/completions/birdbalance.fish
    """
    found = get_completion_class(shell)
    assert found is not None, shell
    script = found(main, {}, "birdbalance", "_BIRDBALANCE_COMPLETE").source()
    click.echo(script)
