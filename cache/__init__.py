"""The HDF5 feature cache: layout, fingerprint, atomic resumable writer and checked reader."""
