"""Cluster ids of the cached word vectors: k-means centroids, each word's nearest one, and its neighbours'.

Semi-supervised (issue 19, item 3): the centroids are fitted on cached vectors of all words, labelled or
not, and the labels are never read. A head with ``heads.clusters`` (a list of k) embeds each word's cluster
id and its neighbours' (the previous and next word in its sentence) as extra inputs
(``cluster_columns``, ``features.inputs.head_inputs``, ``heads.output.ClusterInput``); the centroids are
fitted by the train stage (``fit_cluster_centroids``) and saved in the head's config.

Geometry. Vectors are compared by cosine: ``fit_centroids`` runs ``MiniBatchKMeans`` on L2-normalised
vectors and returns its centres L2-normalised, ``assign`` gives each word the centroid of largest dot product
with it. A word's own norm cannot change which centroid wins, so ``assign`` skips normalising the words.

Saving. A head that reads cluster ids must carry the centroids that made them, so that predict assigns new
words to the same clusters: ``centroids_record`` makes a msgpack-able dict for a head's config or payload,
checksummed as heads/checkpoint.py checksums the weights (sha256, no pickle), and ``centroids_from_record``
refuses a damaged or mis-shaped one in one line naming the file it came from.
"""

from __future__ import annotations

import hashlib

import numpy as np

RECORD_DTYPE = "float32"  # centroids are stored little-endian float32 whatever the machine
RECORD_KEYS = ("shape", "dtype", "bytes", "sha256")


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` (N, D) as float32 of norm 1; an all-zero row stays zero (it has no direction)."""
    rows = np.array(rows, dtype=np.float32)  # a copy: the caller's array (or the cache) is never written
    # Divide by the largest entry first: squares of tiny (subnormal) entries would underflow to a zero norm.
    largest = np.maximum(rows.max(axis=1, initial=0.0), -rows.min(axis=1, initial=0.0))[:, None]  # (N, 1)
    rows /= np.where(largest > 0, largest, 1)
    norms = np.sqrt(np.einsum("nd,nd->n", rows, rows))[:, None]  # (N, 1); einsum: no (N, D) temporary
    rows /= np.where(norms > 0, norms, 1)
    return rows


def sample_rows(num_words: int, sample: int, seed: int) -> np.ndarray:
    """``min(sample, num_words)`` distinct word rows drawn with ``seed``, ascending, (n,) int64."""
    if sample < 1:
        raise ValueError(f"sample must be at least 1 word, got {sample}")
    count = min(sample, num_words)
    rows = np.random.default_rng(seed).choice(num_words, size=count, replace=False)
    return np.sort(rows).astype(np.int64)  # ascending: a memory map reads each page once, in file order


def fit_centroids(features, k: int, sample: int, seed: int) -> np.ndarray:
    """Centroids (k, D) float32 of norm 1: MiniBatchKMeans on ``sample`` seeded rows of ``features``, normalised.

    ``features`` (W, D) is any array indexable by an ascending row array: the cache's float16 memory map, an
    in-memory array or the project's row views. Only the sampled rows are read. The same ``seed`` gives
    the same rows and the same centroids. KMeans settings other than k and the seed are scikit-learn's
    defaults (batches of 1,024, k-means++ initialisation, one run).
    """
    from sklearn.cluster import MiniBatchKMeans

    num_words = len(features)
    if k < 1:
        raise ValueError(f"k must be at least 1 cluster, got {k}")
    rows = sample_rows(num_words, sample, seed)
    if len(rows) < k:
        raise ValueError(f"cannot fit {k} clusters to {len(rows)} sampled words (of {num_words})")
    vectors = _unit_rows(features[rows])  # (n, D) float32
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed).fit(vectors)
    return _unit_rows(kmeans.cluster_centers_)  # (k, D)


def assign(features, centroids: np.ndarray, batch_rows: int) -> np.ndarray:
    """Each word's nearest centroid by cosine, (W,) int32; ties go to the lower id, an all-zero word to 0.

    Reads ``features`` (W, D) ``batch_rows`` rows at a time, in order, so memory holds about
    ``batch_rows * (D + k)`` float32 besides the result, whatever W.
    """
    centroids = np.asarray(centroids)
    if centroids.ndim != 2 or len(centroids) == 0:
        raise ValueError(f"centroids must be a non-empty (k, D) array, got shape {centroids.shape}")
    if features.ndim != 2 or features.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"features of shape {tuple(features.shape)} do not fit centroids of width {centroids.shape[1]}"
        )
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    directions = _unit_rows(centroids).T  # (D, k)
    num_words = len(features)
    ids = np.empty(num_words, np.int32)
    for start in range(0, num_words, batch_rows):
        stop = min(start + batch_rows, num_words)
        batch = np.asarray(features[start:stop], dtype=np.float32)  # (b, D)
        ids[start:stop] = np.argmax(batch @ directions, axis=1)  # (b, k) -> (b,)
    return ids


def with_neighbour_ids(ids: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
    """(W,) cluster ids -> (W, 3) int32: the previous word's id, the word's, the next word's, in its sentence.

    Sentence s owns words ``offsets[s]:offsets[s + 1]``. Before a sentence's first word and after its last
    stands ``k``, an id no centroid has (a head embeds k + 1 rows). Unlike ``features.shape.with_neighbours``
    (own flags last), the columns follow the sentence: previous, word, next.
    """
    ids = np.asarray(ids)
    offsets = np.asarray(offsets)
    num_words = len(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"ids must be a (W,) integer array, got {ids.dtype} shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= k):
        raise ValueError(f"cluster ids must lie in 0..{k - 1}, found {ids.min()}..{ids.max()}")
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != num_words
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(f"offsets must be a non-decreasing (S+1,) array from 0 to {num_words} words")
    first = np.zeros(num_words + 1, bool)  # first[w]: word w starts a sentence (w = W: past the end)
    first[offsets[:-1][np.diff(offsets) > 0]] = True
    first[num_words] = True
    neighbours = np.full((num_words, 3), k, np.int32)  # (W, 3)
    neighbours[1:, 0] = ids[:-1]
    neighbours[first[:num_words], 0] = k  # nothing before a sentence's first word
    neighbours[:, 1] = ids
    neighbours[:-1, 2] = ids[1:]
    neighbours[first[1:], 2] = k  # nothing after its last word
    return neighbours


CLUSTER_SAMPLE = 200_000  # words sampled to fit the centroids (the CRF peer's sample)
CLUSTER_SEED = 0  # one sample and one fit per corpus: every seed of every model reads the same clusters
ASSIGN_ROWS = 16384  # words per matrix product when assigning


def fit_cluster_centroids(features, ks) -> list[np.ndarray]:
    """One set of centroids per k of ``ks``, each (k, D) float32, on the same seeded sample of ``features``."""
    return [fit_centroids(features, int(k), CLUSTER_SAMPLE, CLUSTER_SEED) for k in ks]


def cluster_columns(features, offsets, centroids) -> np.ndarray:
    """(W, 3 * len(centroids)) float32: per set of centroids (k, D), each word's previous, own and next
    word's cluster id (``with_neighbour_ids``: k where there is none), exact integers."""
    columns = [
        with_neighbour_ids(assign(features, c, ASSIGN_ROWS), offsets, len(c)).astype(np.float32) for c in centroids
    ]
    return np.concatenate(columns, axis=1) if columns else np.zeros((len(features), 0), np.float32)


def _digest(shape: tuple[int, int], data: bytes) -> str:
    """sha256 of the dtype, the shape and the bytes: a record whose shape was altered fails it too."""
    header = f"{RECORD_DTYPE}:{shape[0]}x{shape[1]}:".encode()
    return hashlib.sha256(header + data).hexdigest()


def centroids_record(centroids: np.ndarray) -> dict:
    """A msgpack-able dict of ``centroids`` (k, D): shape, dtype, little-endian bytes and their sha256."""
    centroids = np.asarray(centroids)
    if centroids.ndim != 2 or 0 in centroids.shape or not np.isfinite(centroids).all():
        raise ValueError(f"centroids must be a finite, non-empty (k, D) array, got shape {centroids.shape}")
    data = np.ascontiguousarray(centroids, dtype="<f4").tobytes()
    shape = (int(centroids.shape[0]), int(centroids.shape[1]))
    return {"shape": list(shape), "dtype": RECORD_DTYPE, "bytes": data, "sha256": _digest(shape, data)}


def _record_problem(record, dim: int | None) -> str | None:
    """Why ``record`` holds no usable centroids, or None."""
    if not isinstance(record, dict) or any(key not in record for key in RECORD_KEYS):
        return f"not a centroids record (needs {', '.join(RECORD_KEYS)})"
    shape, dtype, data, digest = (record[key] for key in RECORD_KEYS)
    if not (
        isinstance(shape, (list, tuple))
        and len(shape) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        return f"shape must be two positive ints (k, D), found {shape!r}"
    if dtype != RECORD_DTYPE:
        return f"dtype must be {RECORD_DTYPE!r}, found {dtype!r}"
    if not isinstance(data, bytes) or not isinstance(digest, str):
        return "no bytes or no sha256"
    if len(data) != shape[0] * shape[1] * 4:
        return f"{len(data)} bytes cannot hold {shape[0]}x{shape[1]} float32"
    if _digest((shape[0], shape[1]), data) != digest:
        return "its bytes or shape do not match its sha256 checksum (corrupt)"
    if dim is not None and shape[1] != dim:
        return f"centroids of width {shape[1]}, the features have {dim}"
    return None


def centroids_from_record(record, where: str, dim: int | None = None) -> np.ndarray:
    """The (k, D) float32 centroids of a ``centroids_record``; refuses (one-line ValueError naming ``where``)
    a damaged or mis-shaped record, or one whose width D is not ``dim`` when given."""
    problem = _record_problem(record, dim)
    if problem is None:
        centroids = np.frombuffer(record["bytes"], dtype="<f4").reshape(record["shape"]).astype(np.float32)
        if not np.isfinite(centroids).all():
            problem = "centroids hold NaN or Inf"
    if problem is not None:
        raise ValueError(f"{where}: unusable cluster centroids: {problem}")
    return centroids
