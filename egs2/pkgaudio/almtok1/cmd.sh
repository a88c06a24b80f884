# How the recipe runs its jobs. "local": parallel processes on this machine.
# "slurm": one sbatch job per task; put sbatch options (partition, account, ...)
# in ALMTOK_SBATCH_OPTS. Multi-GPU and multi-node training go through ESPnet's
# espnet2.bin.launch, which uses these commands (several nodes need slurm).
cmd_backend=local

case "${cmd_backend}" in
    local)
        export train_cmd="${ALMTOK_LOCAL}/run.pl"
        export cuda_cmd="${ALMTOK_LOCAL}/run.pl"
        export decode_cmd="${ALMTOK_LOCAL}/run.pl"
        ;;
    slurm)
        export ALMTOK_SBATCH_OPTS="${ALMTOK_SBATCH_OPTS:-}"
        export train_cmd="${ALMTOK_LOCAL}/slurm.pl --mem 16G"
        export cuda_cmd="${ALMTOK_LOCAL}/slurm.pl --mem 64G"
        export decode_cmd="${ALMTOK_LOCAL}/slurm.pl --mem 16G"
        ;;
    *)
        echo "cmd.sh: unknown cmd_backend ${cmd_backend}" >&2
        return 1
        ;;
esac
