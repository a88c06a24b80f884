#!/usr/bin/env bash
# Turn "--name value" (or "--name=value") arguments into shell variables, for
# variables the calling script has already defined, as Kaldi's parse_options.sh
# does. Source it: `. local/parse_options.sh`. "--help" prints $help_message.
# Unknown options stop the script with an error.

while true; do
    [ -z "${1:-}" ] && break
    case "$1" in
        --help|-h)
            echo "${help_message:-no help}"
            exit 0
            ;;
        --*=*)
            name="${1%%=*}"; value="${1#*=}"; shift
            ;;
        --*)
            [ $# -ge 2 ] || { echo "$0: missing value for $1" >&2; exit 1; }
            name="$1"; value="$2"; shift 2
            ;;
        *)
            break
            ;;
    esac
    name="${name#--}"
    name="${name//-/_}"
    if [ -z "${!name+set}" ]; then
        echo "$0: unknown option --${name}" >&2
        exit 1
    fi
    # Booleans keep their true/false spelling; everything else is taken as given.
    printf -v "${name}" '%s' "${value}"
done
