"""Logic behind the Kaldi-compatible tools in ``utils/``.

Everything here uses only the Python standard library, so the thin executables in ``utils/``
run with any ``python3`` (also inside Slurm jobs that see nothing but ``PATH``).

Modules:
    jobs      -- command-line parsing, command joining and log format shared by all job runners
    local     -- ``run.pl`` / ``stdout.pl`` (local parallel jobs)
    cluster   -- ``queue.pl`` (SGE) / ``slurm.pl`` (Slurm) / ``ssh.pl``: job scripts, submission, waiting
    scp       -- ``split_scp.pl``, ``filter_scp.pl``, ``filter_scps.pl``, ``utt2spk_to_spk2utt.pl``,
                 ``spk2utt_to_utt2spk.pl``, ``apply_map.pl``, ``sym2int.pl``, ``int2sym.pl``, ``shuffle_list.pl``
    datadir   -- ``validate_data_dir.sh``, ``fix_data_dir.sh``, ``copy_data_dir.sh``
    datatools -- ``combine_data.sh``, ``subset_data_dir.sh``, ``split_data.sh``, ``perturb_data_dir_speed.sh``,
                 ``data/get_utt2dur.sh``, ``data/get_reco2dur.sh``, ``data/get_segments_for_data.sh``, ``subset_scp.pl``
    textutil  -- the awk / sort / grep / perl rules Kaldi's scripts decide by

Each tool decides, exits and writes as Kaldi's script of the same name (tests/test_utils_kaldi_diff.py runs
both on the same inputs); the deliberate differences are listed in docs/espnet_compat.md ("Kaldi utils").
"""
