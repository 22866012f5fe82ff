"""The dataset card (``README.md``) of a published rainbench dataset.

The YAML front matter is built with ``huggingface_hub.DatasetCardData`` plus ``datasets``' own
``configs`` and ``dataset_info`` serialisers, so the Hub and ``load_dataset`` read it exactly as
written. The prose comes from the data: the rows (sources, layouts, cameras, roles, formats) and
the curation report of ``rainbench ingest`` (``report/report.json``; every key is optional, a
missing report only shortens the card).

Public derain sets are recognised by layout or source name and credited with their paper, their
terms and a BibTeX entry; anything else is the publisher's own material under ``--license``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collection.markdown import markdown_table


@dataclass(frozen=True)
class KnownSource:
    """A public deraining set: how to credit it and under which terms it is shared."""

    name: str
    paper: str
    terms: str
    bibtex: str


_RESEARCH_ONLY = "no licence stated by the authors; research use, check their terms before redistributing"

KNOWN_SOURCES: dict[str, KnownSource] = {
    "rain100": KnownSource(
        "Rain100L / Rain100H", "Yang et al., Deep Joint Rain Detection and Removal from a Single Image, CVPR 2017",
        _RESEARCH_ONLY,
        "@inproceedings{yang2017rain100,\n  title={Deep Joint Rain Detection and Removal from a Single Image},\n"
        "  author={Yang, Wenhan and Tan, Robby T. and Feng, Jiashi and Liu, Jiaying and Guo, Zongming and Yan, Shuicheng},\n"
        "  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n  year={2017}\n}"),
    "ddn": KnownSource(
        "Rain1400 (DDN)", "Fu et al., Removing Rain from Single Images via a Deep Detail Network, CVPR 2017",
        _RESEARCH_ONLY,
        "@inproceedings{fu2017ddn,\n  title={Removing Rain from Single Images via a Deep Detail Network},\n"
        "  author={Fu, Xueyang and Huang, Jiabin and Zeng, Delu and Huang, Yue and Ding, Xinghao and Paisley, John},\n"
        "  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n  year={2017}\n}"),
    "rain800": KnownSource(
        "Rain800 (ID-CGAN)", "Zhang et al., Image De-raining Using a Conditional Generative Adversarial Network, "
        "IEEE TCSVT 2019", _RESEARCH_ONLY,
        "@article{zhang2019idcgan,\n  title={Image De-raining Using a Conditional Generative Adversarial Network},\n"
        "  author={Zhang, He and Sindagi, Vishwanath and Patel, Vishal M.},\n"
        "  journal={IEEE Transactions on Circuits and Systems for Video Technology},\n  year={2019}\n}"),
    "spa": KnownSource(
        "SPA-Data", "Wang et al., Spatial Attentive Single-Image Deraining with a High Quality Real Rain Dataset, CVPR 2019",
        _RESEARCH_ONLY,
        "@inproceedings{wang2019spa,\n  title={Spatial Attentive Single-Image Deraining with a High Quality Real Rain Dataset},\n"
        "  author={Wang, Tianyu and Yang, Xin and Xu, Ke and Chen, Shaozhe and Zhang, Qiang and Lau, Rynson W. H.},\n"
        "  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n  year={2019}\n}"),
    "realrain1k": KnownSource(
        "RealRain-1k", "Li et al., Toward Real-world Single Image Deraining: A New Benchmark and Beyond, arXiv 2022",
        _RESEARCH_ONLY,
        "@article{li2022realrain1k,\n  title={Toward Real-world Single Image Deraining: A New Benchmark and Beyond},\n"
        "  author={Li, Wei and Zhang, Qiming and Zhang, Jing and Huang, Zhen and Tian, Xinmei and Tao, Dacheng},\n"
        "  journal={arXiv preprint arXiv:2206.05514},\n  year={2022}\n}"),
    "gtrain": KnownSource(
        "GT-RAIN", "Ba et al., Not Just Streaks: Towards Ground Truth for Single Image Deraining, ECCV 2022",
        _RESEARCH_ONLY + "; frames come from public video streams",
        "@inproceedings{ba2022gtrain,\n  title={Not Just Streaks: Towards Ground Truth for Single Image Deraining},\n"
        "  author={Ba, Yunhao and Zhang, Howard and Yang, Ethan and Suzuki, Akira and Pfahnl, Arnold and Chandrappa, "
        "Chethan Chinder and de Melo, Celso M. and You, Suya and Soatto, Stefano and Wong, Alex and Kadambi, Achuta},\n"
        "  booktitle={European Conference on Computer Vision (ECCV)},\n  year={2022}\n}"),
}
"""Layout name -> credit for the public derain sets rainbench reads."""

_NAME_HINTS = (("rain100", "rain100"), ("rain1400", "ddn"), ("ddn", "ddn"), ("rain800", "rain800"),
               ("spa", "spa"), ("realrain", "realrain1k"), ("gt-rain", "gtrain"), ("gtrain", "gtrain"))

NLCL_BIBTEX = (
    "@inproceedings{ye2022nlcl,\n  title={Unsupervised Deraining: Where Contrastive Learning Meets Self-similarity},\n"
    "  author={Ye, Yuntong and Yu, Changfeng and Chang, Yi and Zhu, Lin and Zhao, Xi-Le and Yan, Luxin and Tian, Yonghong},\n"
    "  booktitle={IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},\n  pages={5821--5830},\n"
    "  year={2022}\n}\n\n"
    "@article{chang2024nlcl,\n  title={Unsupervised Deraining: Where Asymmetric Contrastive Learning Meets Self-similarity},\n"
    "  author={Chang, Yi and Guo, Yun and Ye, Yuntong and Yu, Changfeng and Zhu, Lin and Zhao, Xile and Yan, Luxin and Tian, Yonghong},\n"
    "  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},\n  volume={46},\n  number={5},\n"
    "  pages={2638--2657},\n  year={2024},\n  doi={10.1109/TPAMI.2023.3321311}\n}"
)

_OWN = {"plain": "own photographs", "paired": "own paired photographs", "unpaired": "own photographs (unpaired)",
        "video": "frames of own videos", "synth": "synthetic rain (rainbench synth) over own clean images"}


HUB_LICENSES = frozenset((
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research",
    "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openmdw-1.0",
    "openmdw-1.1", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr",
    "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2",
    "llama3.3", "llama4", "grok2-community", "gemma", "unknown", "other",
))
"""The licence identifiers a Hub card's ``license:`` accepts, as listed in the Hub documentation
(huggingface/hub-docs, docs/hub/repositories-licenses.md, 2026-08). huggingface_hub ships no such list."""


def check_license(license: str) -> str:
    """``license`` if it is a Hub licence identifier, else ValueError naming it and the closest ids."""
    import difflib

    if license in HUB_LICENSES:
        return license
    close = difflib.get_close_matches(license.lower(), sorted(HUB_LICENSES), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(f"--license {license!r} is not a Hub licence identifier; {hint}"
                     "see https://huggingface.co/docs/hub/repositories-licenses (e.g. cc-by-4.0, cc-by-nc-4.0, mit)")


def known_source(source: str, layout: str | None) -> KnownSource | None:
    """The public set a source comes from, by its layout or, failing that, its name."""
    if layout in KNOWN_SOURCES:
        return KNOWN_SOURCES[layout]
    lowered = source.lower().replace("_", "-")
    for hint, key in _NAME_HINTS:
        if hint == "spa" and not (lowered == "spa" or lowered.startswith(("spa-", "spa."))):
            continue  # "spa" is too short to match inside other names
        if hint in lowered:
            return KNOWN_SOURCES[key]
    return None


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` label for ``rows`` examples."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if rows < bound:
            return label
    return "100M<n<1B"


def _counts(values: Any) -> dict[str, int]:
    series = values.dropna().astype(str)
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def describe(dsd: Any) -> dict[str, Any]:
    """Figures the card needs, read from the metadata columns only (images are never loaded)."""
    import pandas as pd

    wanted = ("role", "source", "layout", "camera_make", "camera_model", "format", "rain_kind", "clean")
    frames = []
    for split in sorted(dsd):
        ds = dsd[split]
        meta = ds.select_columns([c for c in wanted if c in ds.column_names and c != "clean"]).to_pandas()
        meta["split"] = split
        if "role" not in meta:  # older datasets: infer it from the validity bitmap, never the bytes
            valid = {c: ds.data.column(c).is_valid().to_pylist() if c in ds.column_names else [False] * len(ds)
                     for c in ("rainy", "clean")}
            meta["role"] = ["pair" if r and c else ("rainy" if r else "clean")
                            for r, c in zip(valid["rainy"], valid["clean"])]
        frames.append(meta)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "role"])
    for column in wanted:
        if column not in frame:
            frame[column] = None
    sources = {}
    for source, part in frame.groupby(frame["source"].fillna("unknown"), sort=True):
        layouts = part["layout"].dropna()
        sources[str(source)] = {"rows": len(part),
                                "layout": str(layouts.mode().iloc[0]) if len(layouts) else None}
    cameras = (frame["camera_make"].fillna("").astype(str).str.strip() + " " +
               frame["camera_model"].fillna("").astype(str).str.strip()).str.strip()
    return {
        "rows": len(frame),
        "by_split": {s: {r: int(n) for r, n in part["role"].value_counts().sort_index().items()}
                     for s, part in frame.groupby("split", sort=True)},
        "roles": _counts(frame["role"]),
        "sources": sources,
        "cameras": _counts(cameras[cameras != ""]),
        "formats": _counts(frame["format"]),
        "rain_kinds": _counts(frame["rain_kind"]),
    }


def _curation(report: dict[str, Any]) -> list[str]:
    lines = ["## Curation", ""]
    if not report:
        return lines + ["No curation report was found next to the dataset (`report/report.json`).", ""]
    status = report.get("status") or {}
    if report.get("files") is not None:
        seen = ", ".join(f"{n} {s}" for s, n in status.items())
        lines += [f"Files seen by `rainbench ingest`: {report['files']}" + (f" ({seen})." if seen else "."), ""]
    for key, title in (("quarantine_reasons", "Quarantined files by reason"), ("duplicate_reasons", "Duplicates by kind")):
        if report.get(key):
            lines += [f"{title}:", ""] + markdown_table(["reason", "files"], [[k, v] for k, v in report[key].items()])
    clusters = (report.get("clusters") or {}).get("count")
    if clusters is not None:
        lines += [f"Duplicate clusters: {clusters}; scenes: {report.get('scenes', 'n/a')}.", ""]
    if report.get("flagged_duplicates"):
        flagged = sum(report["flagged_duplicates"].values())
        lines += [f"Near-duplicates kept and flagged (`duplicate_of` set, e.g. a benchmark's repeated "
                  f"backgrounds): {flagged} rows.", ""]
    lines += _leakage(report.get("leakage") or {})
    if report.get("fingerprint"):
        lines += [f"Dataset fingerprint: `{report['fingerprint']}`.", ""]
    return lines


def _leakage(leakage: dict[str, Any]) -> list[str]:
    """The card's summary of the curation report's leakage table (pairs of source/split that share scenes)."""
    pairs = [p for p in leakage.get("pairs") or [] if p.get("a") != p.get("b")]
    if not leakage:
        return []
    if not pairs:
        return ["Leakage: no scene (a pair's clean image, else the image) is shared by two sources or splits.", ""]
    lines = ["Scenes shared between sources or splits (rows of the first linked to the second; across splits "
             "the training-side copies were removed, see `report/report.md`):", ""]
    return lines + markdown_table(["rows of", "linked to", "rows", "removed"],
                          [[p["a"], p["b"], p["rows"], p["removed"]] for p in pairs[:20]])


def _policies(report: dict[str, Any], keep_gps: bool, scrubbed_images: int) -> list[str]:
    radius = report.get("radius") or (report.get("dedup") or {}).get("radius")
    near = f"perceptual hashes (pHash) within Hamming radius {radius}" if radius is not None else \
        "perceptual hashes (pHash) within the ingest radius (`--radius`, 8 by default)"
    lines = [
        "### Deduplication", "",
        "Rows were clustered by their scene identity (a pair's clean image, the background, else the image "
        f"itself): exact copies by sha256 or by identical pixels, near copies by {near}; images without "
        "structure (flat colours) match by exact pixels only. In splits fixed by a public layout or a split file, "
        "near-duplicates are kept and flagged (`duplicate_of`), so published numbers over the whole test set can "
        "be reproduced; elsewhere each cluster keeps one representative (the largest, then the sharpest). Clean "
        "images shared by several rainy renderings of one scene (DDN, GT-RAIN) are kept for every pair.", "",
        "### Splits", "",
        "Rows sharing a scene (layout scene, video, or EXIF capture session), a clean image or a duplicate "
        "cluster are assigned to the same split, so near-duplicates never straddle splits. Splits fixed by a "
        "public layout (e.g. Rain100's train/test) are kept whole; where a scene is fixed to two splits, the "
        "training-side copy is removed. The rest are drawn with a fixed seed, stratified by `rain_kind` where "
        "tagged, and keep their split when the dataset grows.", "",
        "### Privacy (EXIF)", "",
    ]
    if keep_gps:
        lines += ["Published with `--keep-gps`: GPS columns and the EXIF blocks inside the images are kept as "
                  "they were. Images may reveal where they were taken.", ""]
    else:
        lines += [
            "GPS columns and other personal columns (serial numbers, owner names) are removed. Inside the image "
            "files, the EXIF GPS block, camera and lens serial numbers, owner name, image unique id and maker "
            "notes are removed from JPEG and PNG metadata without re-encoding the pixels; camera make and model, "
            f"exposure settings and orientation are kept. {scrubbed_images} image(s) were rewritten this way, so "
            "their bytes differ from the original files named by `sha256`.", ""]
    return lines


def _license(stats: dict[str, Any], license: str) -> tuple[str, str | None]:
    public = [known_source(s, info.get("layout")) for s, info in stats["sources"].items()]
    if any(p is not None for p in public):
        return "other", "rainbench-mixed-sources"
    return license, None


def _body(repo_id: str, pretty: str, stats: dict[str, Any], report: dict[str, Any], license: str,
          keep_gps: bool, scrubbed_images: int, columns: list[str]) -> str:
    roles = stats["roles"]
    pairs, rainy, clean = roles.get("pair", 0), roles.get("rainy", 0), roles.get("clean", 0)
    lines = [
        f"# {pretty}", "",
        f"A real-rain image restoration dataset curated with rainbench: {stats['rows']} rows "
        f"({pairs} rainy images paired with a clean image of the same scene, {rainy} rainy images without a clean "
        f"reference, {clean} unpaired clean images). Images are stored as the original encoded bytes.", "",
        "## Load it", "", "```python", "import datasets", "",
        f'ds = datasets.load_dataset("{repo_id}")', 'row = ds["train"][0] if "train" in ds else ds[next(iter(ds))][0]',
        'rainy, clean = row["rainy"], row["clean"]  # PIL images; clean is None for unpaired rows', "```", "",
        "`rainbench run --dataset " + repo_id + "` benchmarks deraining methods on it directly.", "",
        "## Structure", "",
        "One row per rainy image. `rainy` and `clean` are Image columns of the same row, so a pair is never "
        "split across rows; `role` says what the row holds (`pair`, `rainy` or `clean`).", "",
    ]
    split_rows = [[s, sum(r.values()), r.get("pair", 0), r.get("rainy", 0), r.get("clean", 0)]
                  for s, r in stats["by_split"].items()]
    lines += markdown_table(["split", "rows", "pairs", "rainy only", "clean only"], split_rows)
    lines += ["Columns: " + ", ".join(f"`{c}`" for c in columns) + ". Pixels are stored as in the file; apply "
              "`orientation` (EXIF) when displaying.", ""]
    lines += ["## Sources and licences", "",
              "Credits and terms below are as known to rainbench; check the authors' pages before redistributing.", ""]
    rows = []
    for source, info in stats["sources"].items():
        known = known_source(source, info.get("layout"))
        if known:
            rows.append([source, info.get("layout") or "", info["rows"], known.name, known.terms, known.paper])
        else:
            rows.append([source, info.get("layout") or "", info["rows"], _OWN.get(info.get("layout"), "own material"),
                         f"`{license}` (the publisher's)", "this dataset"])
    lines += markdown_table(["source", "layout", "rows", "origin", "licence", "credit"], rows)
    if stats["cameras"]:
        top = sorted(stats["cameras"].items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        lines += ["## Cameras", ""] + markdown_table(["camera", "rows"], [[k, v] for k, v in top])
    if stats["rain_kinds"]:
        lines += ["## Rain kinds", ""] + markdown_table(["rain_kind", "rows"], [[k, v] for k, v in stats["rain_kinds"].items()])
    if stats["formats"]:
        lines += ["File formats: " + ", ".join(f"{k} ({v})" for k, v in stats["formats"].items()) + ".", ""]
    lines += _curation(report) + _policies(report, keep_gps, scrubbed_images)
    cited = []
    for source, info in stats["sources"].items():
        known = known_source(source, info.get("layout"))
        if known and known.bibtex not in cited:
            cited.append(known.bibtex)
    lines += ["## Citation", "",
              "If you use this dataset, please cite NLCL (the method rainbench was built around) and every source "
              "dataset it contains:", "", "```bibtex", NLCL_BIBTEX, *("\n" + b for b in cited), "```", ""]
    return "\n".join(lines)


def dataset_card(
    *,
    repo_id: str,
    features: dict[str, Any],
    splits: dict[str, tuple[int, int]],
    download_size: int,
    stats: dict[str, Any],
    report: dict[str, Any],
    license: str = "cc-by-4.0",
    pretty_name: str | None = None,
    keep_gps: bool = False,
    scrubbed_images: int = 0,
):
    """The ``huggingface_hub.DatasetCard`` of a tree; ``splits`` maps split -> (rows, Arrow bytes)."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    check_license(license)
    pretty = pretty_name or repo_id.split("/")[-1].replace("-", " ").replace("_", " ").strip() or repo_id
    yaml_license, license_name = _license(stats, license)
    tags = ["image-deraining", "rain-removal", "image-restoration", "real-rain", "rainbench"]
    if stats["roles"].get("pair"):
        tags.append("paired")
    if stats["roles"].get("rainy") or stats["roles"].get("clean"):
        tags.append("unpaired")
    # The per-source terms are the card's "Sources and licences" table: the licence link points at it.
    extra = {"license_name": license_name, "license_link": "README.md"} if license_name else {}
    data = DatasetCardData(license=yaml_license, task_categories=["image-to-image"], tags=tags,
                           size_categories=[size_category(stats["rows"])], pretty_name=pretty, **extra)
    MetadataConfigs({"default": {"data_files": [{"split": s, "path": f"data/{s}-*"} for s in sorted(splits)]}}
                    ).to_dataset_card_data(data)
    split_dict = SplitDict()
    for name in sorted(splits):
        split_dict.add(SplitInfo(name=name, num_examples=splits[name][0], num_bytes=splits[name][1]))
    info = DatasetInfo(features=Features(features), splits=split_dict, download_size=download_size,
                       dataset_size=sum(b for _, b in splits.values()))
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    body = _body(repo_id, pretty, stats, report, license, keep_gps, scrubbed_images, list(features))
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
