"""Logic behind the Kaldi-compatible tools in ``utils/``.

Everything here uses only the Python standard library, so the thin executables in ``utils/``
run with any ``python3`` (also inside Slurm jobs that see nothing but ``PATH``).

Modules:
    jobs      -- command-line parsing, command joining and log format shared by all job runners
    local     -- ``run.pl`` / ``stdout.pl`` (local parallel jobs)
    cluster   -- ``queue.pl`` (SGE) / ``slurm.pl`` (Slurm) / ``ssh.pl``: job scripts, submission, waiting
    scp       -- ``split_scp.pl``, ``filter_scp.pl``, ``utt2spk_to_spk2utt.pl``, ``spk2utt_to_utt2spk.pl``
    datadir   -- ``validate_data_dir.sh``, ``fix_data_dir.sh``, ``copy_data_dir.sh``
"""
