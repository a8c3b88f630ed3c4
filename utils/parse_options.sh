# shellcheck shell=bash
# Kaldi-compatible option parser.  Source it from a bash script after the option defaults:
#
#   nj=4                      # defaults: each option must exist as a variable first
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . utils/parse_options.sh  # parses and shifts away "$@"'s leading options
#
# Rules (Kaldi's):
#   --foo-bar VALUE and --foo_bar VALUE both set foo_bar=VALUE.
#   An option whose variable is not set is refused (exit 1, message names the option).
#   If the default is true or false, the value must be true or false (exit 1, message names it).
#   --help / -h prints $help_message on stderr and exits 0.
#   --config FILE sources FILE (options in it are plain "name=value" shell lines) before the
#     command-line options are applied, so command-line options win.
#   Parsing stops at the first argument that does not start with "--" (or at "--", which is removed),
#   so positional arguments are left in "$@".
#   --foo=bar is refused (Kaldi options are "--name value"); an empty --cmd is refused.
# Exit status 1 for every usage error, as Kaldi's (messages on stderr, prefixed by "$0: ").
# A script whose contract says otherwise sets __po_usage_status (e.g. =2) before sourcing this file;
# names starting with __po_ are never options.

# 1) --config files first, in order.
__po_i=1
while [ "${__po_i}" -le $# ]; do
    if [ "${!__po_i}" = "--config" ]; then
        __po_j=$((__po_i + 1))
        if [ "${__po_j}" -gt $# ]; then
            echo "$0: option --config needs a file name" 1>&2
            exit "${__po_usage_status:-1}"
        fi
        __po_cfg=${!__po_j}
        if [ ! -r "${__po_cfg}" ]; then
            echo "$0: cannot read config file ${__po_cfg} (given by --config)" 1>&2
            exit "${__po_usage_status:-1}"
        fi
        # shellcheck disable=SC1090
        . "${__po_cfg}" || { echo "$0: error sourcing config file ${__po_cfg}" 1>&2; exit "${__po_usage_status:-1}"; }
    elif [[ "${!__po_i}" != --* && "${!__po_i}" != -h ]] || [ "${!__po_i}" = "--" ]; then
        break  # options end at the first positional argument
    else
        __po_i=$((__po_i + 1))  # skip the option's value
    fi
    __po_i=$((__po_i + 1))
done

# 2) The options themselves.
while [ $# -gt 0 ]; do
    case "$1" in
        --help | -h)
            if [ -z "${help_message:-}" ]; then
                echo "No help found." 1>&2
            else
                printf '%b\n' "${help_message}" 1>&2
            fi
            exit 0
            ;;
        --)
            shift
            break
            ;;
        --*=*)
            echo "$0: options to scripts must be of the form --name value, got '$1'"  # stdout, as Kaldi's
            exit "${__po_usage_status:-1}"
            ;;
        --config)
            [ $# -ge 2 ] || { echo "$0: option --config needs a file name" 1>&2; exit "${__po_usage_status:-1}"; }
            shift 2
            ;;
        --?*)
            __po_name=${1#--}
            __po_name=${__po_name//-/_}
            if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [[ "${__po_name}" == __po_* ]] || [ -z "${!__po_name+set}" ]; then
                echo "$0: invalid option $1 (no such option)" 1>&2
                exit "${__po_usage_status:-1}"
            fi
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" 1>&2
                exit "${__po_usage_status:-1}"
            fi
            __po_old=${!__po_name}
            if [ "${__po_old}" = true ] || [ "${__po_old}" = false ]; then
                if [ "$2" != true ] && [ "$2" != false ]; then
                    echo "$0: expected \"true\" or \"false\": $1 $2" 1>&2
                    exit "${__po_usage_status:-1}"
                fi
            fi
            printf -v "${__po_name}" '%s' "$2"
            shift 2
            ;;
        *)
            break
            ;;
    esac
done

# Kaldi's check: an empty --cmd is almost always a scripting error.
if [ -n "${cmd+set}" ] && [ -z "${cmd}" ]; then
    echo "$0: empty argument to --cmd option" 1>&2
    exit "${__po_usage_status:-1}"
fi
unset __po_i __po_j __po_cfg __po_name __po_old __po_usage_status
true
