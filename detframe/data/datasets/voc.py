"""Pascal VOC layout reader (VOCdevkit/VOC2007, VOC2012 and any custom set in the same layout).

Box convention: VOC XML gives 1-based, inclusive pixel indices (xmin=1 is the first column, xmax the
last column inside the box). We convert to the project's continuous xyxy convention with
x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax (detectron2 does the same), so that a box's width is
xmax - xmin + 1 pixels. Writers (synthetic set, exports) apply the inverse.

Real-world XML quirks are fixed and counted, and reported once per dataset: a foreign absolute
<path> or a <filename> that differs from the file (ignored: the image is found by id), a missing
<size> (read from the image), float coordinates (kept as floats), degenerate boxes (dropped),
boxes reaching out of the image (clipped; dropped when nothing is left); the boxes changed or dropped
are named (file and object) in a warning. Bad input is an error naming the file and the object, or
drops the image under data.on_error=skip: an unreadable XML, an unknown class, a missing, empty or
non-finite (NaN, inf) coordinate.

Instance masks (`with_masks`) come from SegmentationObject/<id>.png, VOC's instance maps: pixel value k
is the k-th <object> of the XML, 0 background, 255 the unlabelled outline (in no mask). VOC has them
for the images of ImageSets/Segmentation only; an image without one is bad input naming the file.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import ConfigError, DatasetError, choices_text, did_you_mean
from ...ops.masks import encode_masks
from ...registry import DATASETS
from ...structures import Sample
from .base import DetectionDataset, class_problem
from .records import ImageRecord, finite_number, image_size, positive_int, read_list, sanitize_boxes

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

LAYOUT = "<root>/Annotations/<id>.xml, <root>/JPEGImages/<id>.jpg, <root>/ImageSets/Main/<split>.txt"
DIFFICULT = ("ignore", "positive", "drop")
COORDS = ("xmin", "ymin", "xmax", "ymax")


@DATASETS.register()
class VOCDetection(DetectionDataset):
    """Images listed in `ImageSets/Main/<split>.txt` under a VOC-layout `root`.

    Args:
        root: folder holding Annotations/, JPEGImages/ and ImageSets/Main/.
        split: name of the list file in ImageSets/Main (train, val, trainval, test).
        class_names: the classes, in label order; an object of another class is bad input.
        difficult: what "difficult" objects become: "ignore" (default: ignored instances, neither
            positive nor negative in training, crowd regions in COCO evaluation), "positive" (ordinary
            objects), or "drop".
        img_ext: image file extension.
        transforms: callable applied to each `Sample`.
        on_error: "error" or "skip" (see `DetectionDataset`).
        with_masks: also read each object's instance mask from SegmentationObject/ (see above).
    """

    def __init__(
        self,
        root: str,
        split: str,
        class_names: Sequence[str] = VOC_CLASSES,
        difficult: str = "ignore",
        img_ext: str = ".jpg",
        transforms: Callable[[Sample], Sample] | None = None,
        on_error: str = "error",
        with_masks: bool = False,
    ) -> None:
        super().__init__(class_names, transforms, on_error)
        self.with_masks = with_masks
        if difficult not in DIFFICULT:
            raise ConfigError(f"VOCDetection.difficult: expected one of {', '.join(DIFFICULT)}, "
                              f"got '{difficult}'")
        self.root = Path(root).expanduser()
        self.split, self.difficult, self.img_ext = split, difficult, img_ext
        if not self.root.is_dir():
            raise DatasetError(f"VOC dataset root not found: '{self.root}'. "
                               f"Expected the Pascal VOC layout {LAYOUT}; point data.root at it")
        list_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            found = sorted(p.stem for p in (self.root / "ImageSets" / "Main").glob("*.txt"))
            raise DatasetError(
                f"VOC split list not found: '{list_file}'.{did_you_mean(split, found)} "
                f"Splits there: {choices_text(found)}. Expected the layout {LAYOUT}; name one of "
                "those splits, or write the list"
            )
        self.source = str(list_file)
        ids = [line.split()[0] for line in read_list(list_file, "split list")]
        self.listed = len(ids)
        self.class_to_label = {name: i for i, name in enumerate(self.class_names)}
        for index, name in enumerate(ids):
            rec = self._parse(index, name)
            if rec is not None:
                self.records.append(rec)
        self.settle()

    def _parse(self, index: int, name: str) -> ImageRecord | None:
        xml_path = self.root / "Annotations" / f"{name}.xml"
        # The image is found by id, not by <filename>/<path>: those often name another machine's files.
        img_path = self.root / "JPEGImages" / f"{name}{self.img_ext}"
        try:
            root = ET.parse(xml_path).getroot()
        except FileNotFoundError:
            self.problem(xml_path, f"annotation file not found: {xml_path} (listed in {self.source})",
                         "missing_annotation", img_path)
            return None
        except (ET.ParseError, OSError) as e:  # OSError: a folder, no permission
            self.problem(xml_path, f"cannot parse annotation file {xml_path}: {e}", "unreadable_annotation",
                         img_path)
            return None
        img_path = self._image_path(root, img_path)
        height, width = self._size(root, xml_path, img_path)
        if height <= 0:
            return None
        boxes, labels, ignore, names, objects = [], [], [], [], []
        for k, obj in enumerate(root.iter("object"), 1):
            cls = (obj.findtext("name") or "").strip()
            if cls not in self.class_to_label:
                class_problem(self, xml_path, cls, img_path, did_you_mean(cls, self.class_names))
                continue
            difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true")
            if difficult and self.difficult == "drop":
                self.quirks.add("difficult objects dropped (difficult=drop)")
                continue
            box = self._box(obj, f"object {k} ('{cls}')", xml_path, img_path)
            if box is None:
                return None
            boxes.append(box)
            labels.append(self.class_to_label[cls])
            ignore.append(difficult and self.difficult == "ignore")
            names.append(f"{xml_path.name} (object {k} '{cls}')")
            objects.append(k)
        masks = self._masks(name, objects, (height, width), xml_path, img_path) if self.with_masks else None
        if self.with_masks and masks is None:
            return None
        boxes, keep = sanitize_boxes(np.array(boxes, np.float32).reshape(-1, 4), width, height, self.quirks,
                                     names)
        return ImageRecord(
            image_id=index, path=img_path, height=height, width=width, boxes=boxes[keep],
            labels=np.array(labels, np.int64)[keep], ignore=np.array(ignore, bool)[keep],
            annotation=str(xml_path), masks=None if masks is None else [m for m, k in zip(masks, keep) if k],
        )

    def _masks(self, name: str, objects: list[int], size: tuple[int, int], xml_path: Path,
               img_path: Path) -> list[dict] | None:
        """Compressed RLEs of the `objects` (1-based <object> positions) from the image's instance map,
        or None after recording a problem."""
        png = self.root / "SegmentationObject" / f"{name}.png"
        try:
            with Image.open(png) as im:
                index = np.asarray(im)
        except FileNotFoundError:
            self.problem(png, f"{xml_path}: no instance mask file {png} (data.with_masks=true; VOC has them "
                         "for the images of ImageSets/Segmentation only, so take the split list from there)",
                         "bad_mask", img_path)
            return None
        except (OSError, ValueError) as e:
            self.problem(png, f"cannot read the instance mask file {png}: {e}", "bad_mask", img_path)
            return None
        if index.shape != size:
            self.problem(png, f"{png}: an array of shape {index.shape}, expected a single-channel instance "
                         f"map of {size} (h, w), the size {xml_path.name} states", "bad_mask", img_path)
            return None
        return encode_masks(np.stack([index == k for k in objects]).reshape(-1, *size))

    def _image_path(self, root: ET.Element, img_path: Path) -> Path:
        filename = (root.findtext("filename") or "").strip()
        if filename and filename != img_path.name:
            self.quirks.add("<filename> differs from the file name (ignored)")
            if not img_path.exists() and (img_path.parent / filename).is_file():
                self.quirks.add("images found by <filename> (another extension)")
                return img_path.parent / filename
        path = (root.findtext("path") or "").strip()
        if path and os.path.abspath(path) != os.path.abspath(img_path):
            self.quirks.add("foreign <path> (ignored)")
        return img_path

    def _size(self, root: ET.Element, xml_path: Path, img_path: Path) -> tuple[int, int]:
        size = root.find("size")
        width = positive_int(size.findtext("width")) if size is not None else 0
        height = positive_int(size.findtext("height")) if size is not None else 0
        if width and height:
            return height, width
        try:
            height, width = image_size(img_path)
        except OSError as e:
            kind = "missing_image" if not img_path.exists() else "unreadable_image"
            self.problem(img_path, f"{xml_path} has no <size> and its image {img_path} is unreadable: {e}",
                         kind, img_path)
            return 0, 0
        self.quirks.add("<size> missing (read from the image)" if size is None
                        else "<size> without a usable width and height (read from the image)")
        return height, width

    def _box(self, obj: ET.Element, what: str, xml_path: Path, img_path: Path) -> list[float] | None:
        """The object's box in the project's convention, or None after recording a problem: a missing,
        empty or non-finite coordinate (NaN, inf) must not reach training."""
        bnd = obj.find("bndbox")
        texts = [bnd.findtext(k) if bnd is not None else None for k in COORDS]
        values = [finite_number(t.strip()) if t is not None else None for t in texts]
        bad = [f"<{k}> " + ("missing" if t is None else f"'{t.strip()}'")
               for k, t, v in zip(COORDS, texts, values) if v is None]
        if bad:
            self.problem(xml_path, f"{xml_path}: {what}: " + (
                "no <bndbox>" if bnd is None else f"{', '.join(bad)} in <bndbox>, expected finite numbers"),
                "bad_box", img_path)
            return None
        if any(not t.strip().lstrip("-").isdigit() for t in texts):
            self.quirks.add("boxes with float coordinates")
        xmin, ymin, xmax, ymax = values
        return [xmin - 1, ymin - 1, xmax, ymax]

    def ignored_what(self) -> str:
        return "difficult objects; VOCDetection's difficult=positive makes them ordinary objects"
