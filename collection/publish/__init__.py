"""Publish a curated dataset to the Hugging Face Hub: build its exact tree, then upload it resumably.

One module per job: :mod:`.checks` (repo id, licence and size checks; :class:`PublishError`),
:mod:`.tree` (:func:`dry_run`: Parquet shards and the dataset card, personal data scrubbed),
:mod:`.upload` (:func:`upload`: batched commits, skip what landed, card last) and
:mod:`.hub_errors` (Hub and network failures as one-line errors). See docs/publish.md.
"""

from collection.publish.checks import (
    PublishError,
    check_license_id,
    check_repo_id,
    parse_size,
)
from collection.publish.tree import (
    DEFAULT_SHARD_SIZE,
    ROWS_PER_GROUP,
    Progress,
    ShardInfo,
    TreeSummary,
    dry_run,
    load_curated,
    read_report,
)
from collection.publish.upload import (
    DEFAULT_BYTES_PER_COMMIT,
    DEFAULT_FILES_PER_COMMIT,
    UploadSummary,
    upload,
)

__all__ = [
    "DEFAULT_BYTES_PER_COMMIT", "DEFAULT_FILES_PER_COMMIT", "DEFAULT_SHARD_SIZE", "ROWS_PER_GROUP", "Progress",
    "PublishError", "ShardInfo", "TreeSummary", "UploadSummary", "check_license_id", "check_repo_id", "dry_run",
    "load_curated", "parse_size", "read_report", "upload",
]
