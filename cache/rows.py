"""A row view over several feature arrays, as if they were one, without copying them.

Training indexes its inputs by word-row numbers (``inputs[rows]``). With extra
unlabelled text, the rows of the corpus cache and of the text cache are one
row space: corpus rows first, then the text's. ``ConcatRows`` maps each row
number to its array and reads only the rows asked for, so two memory-mapped
caches of any size cost only the rows of the batches in memory. ``ConcatColumns``
puts columns side by side the same way (the cached vectors and the word-shape flags).
"""

from __future__ import annotations

import numpy as np


class _RowView:
    """Indexing shared by the views: an int, a slice or a 1-D integer array of rows, as NumPy would."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.asarray([key])][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:  # a block of rows: the parts' slices, with no index to sort or gather through
                return self._block(start, max(start, stop))
            return self[np.arange(start, stop, step)]
        rows = np.asarray(key)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"index rows with a 1-D integer array, got {rows.dtype} shape {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        total = len(self)
        rows = np.where(rows < 0, rows + total, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= total):
            raise IndexError(f"row index out of range for {total} rows")
        return self._rows(rows)

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (0 <= start <= stop <= len): as ``_rows`` of their range unless a view reads
        blocks faster."""
        return self._rows(np.arange(start, stop))

    def __array__(self, dtype=None, copy=None):
        """Every row in memory: what ``np.asarray(view)`` gives (it reads the whole arrays)."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


class ConcatRows(_RowView):
    """Rows of ``parts`` (each (n_i, D), one dtype) stacked: row r of the view is a row of one part.

    Indexable by an int, a slice or a 1-D integer array (any order, repeats
    allowed, negative counts from the end); returns a NumPy array like the
    same index on the concatenation would.
    """

    def __init__(self, *parts):
        if not parts:
            raise ValueError("ConcatRows needs at least one array")
        shapes = {tuple(part.shape[1:]) for part in parts}
        dtypes = {np.dtype(part.dtype) for part in parts}
        if len(shapes) != 1 or len(dtypes) != 1:
            raise ValueError(f"arrays differ in row shape {sorted(shapes)} or dtype {sorted(map(str, dtypes))}")
        self.parts = parts
        self.starts = np.concatenate([[0], np.cumsum([len(part) for part in parts])]).astype(np.int64)
        self.dtype = dtypes.pop()
        self.shape = (int(self.starts[-1]),) + shapes.pop()

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)  # (N, D)
        part_of = np.searchsorted(self.starts, rows, side="right") - 1  # (N,)
        for p, part in enumerate(self.parts):
            where = np.flatnonzero(part_of == p)
            if where.size == 0:
                continue
            # Sorted unique local rows: h5py datasets need them, and a memmap reads each page once.
            local, inverse = np.unique(rows[where] - self.starts[p], return_inverse=True)
            out[where] = np.asarray(part[local])[inverse]
        return out


class ConcatColumns(_RowView):
    """Columns of ``parts`` (each (N, D_i), one row count) side by side, read row by row, cast to ``dtype``.

    ``view[rows]`` gives ``np.concatenate([part[rows] for part in parts], 1)``:
    a memory-mapped feature cache gains extra columns (the word-shape flags)
    without a second copy of it on disk or in memory.
    """

    def __init__(self, *parts, dtype=np.float16):
        if not parts or len({len(part) for part in parts}) != 1:
            raise ValueError(f"ConcatColumns needs arrays of one row count, got {[len(p) for p in parts]}")
        self.parts, self.dtype = parts, np.dtype(dtype)
        self.shape = (len(parts[0]), sum(int(part.shape[1]) for part in parts))

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        if rows.size and np.all(rows[1:] > rows[:-1]):  # already sorted and unique (a split's words): read as is
            return self._fill(lambda part: part[rows], len(rows))
        # Sorted unique rows: h5py datasets need them, and a memmap reads each page once.
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._fill(lambda part: part[unique], len(unique))[inverse.reshape(-1)]

    def _block(self, start: int, stop: int) -> np.ndarray:
        return self._fill(lambda part: part[start:stop], stop - start)

    def _fill(self, read, count: int) -> np.ndarray:
        """(count, D): each part's ``read(part)`` cast into its columns of one array (no concatenated copy)."""
        out = np.empty((count, self.shape[1]), self.dtype)
        column = 0
        for part in self.parts:
            width = int(part.shape[1])
            out[:, column : column + width] = read(part)
            column += width
        return out


class TakeRows(_RowView):
    """Rows ``rows`` of ``array``, in that order: row i of the view is ``array[rows[i]]``, read when indexed.

    The select stage scores a split's words chunk by chunk through this view of the memory-mapped cache, so
    its memory is a chunk's rows however many candidates there are (a copy of 36,000 sentences' vectors is
    600 MB). ``array`` is anything indexable by a sorted 1-D integer array: a NumPy array, a memmap, an h5py
    dataset (which needs its rows sorted and unique: the view reads them so) or another view.
    """

    def __init__(self, array, rows):
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"rows must be a 1-D integer array, got {rows.dtype} shape {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows.min() < 0 or rows.max() >= len(array)):
            raise IndexError(f"row index out of range for {len(array)} rows")
        self.array, self.rows = array, rows
        self.dtype = np.dtype(array.dtype)
        self.shape = (len(rows),) + tuple(array.shape[1:])

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        wanted = self.rows[rows]
        if not wanted.size:
            return np.empty((0,) + self.shape[1:], self.dtype)
        if np.all(wanted[1:] > wanted[:-1]):  # sorted and unique (a split's words): read as is
            return np.asarray(self.array[wanted])
        unique, inverse = np.unique(wanted, return_inverse=True)
        return np.asarray(self.array[unique])[inverse.reshape(-1)]

    def _block(self, start: int, stop: int) -> np.ndarray:
        return self._rows(np.arange(start, stop))
