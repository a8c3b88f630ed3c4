#!/usr/bin/env bash
# Multi-label tagging demo: the same recipe as ./run.sh --corpus instruments_mix (options go to cls.sh).
exec "$(dirname "$0")/run.sh" --corpus instruments_mix "$@"
