#!/usr/bin/env bash
# Spoken language identification demo: the same recipe as ./run.sh --corpus lid (options go to cls.sh).
exec "$(dirname "$0")/run.sh" --corpus lid "$@"
