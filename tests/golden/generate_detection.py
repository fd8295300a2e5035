#!/usr/bin/python3
"""Golden values for the detection parts of tests/test_detection.cpp.

Run with Debian's interpreter (python3-numpy, python3-torchvision 0.14):
    /usr/bin/python3 tests/golden/generate_detection.py
It writes tests/golden/detection.txt as "<name> [dims] float64 values" lines (golden_io.hpp's
named_tensors format):

- ap<i>.truth [G, 6]: rows (image, x1, y1, x2, y2, label); ap<i>.det [D, 7]: rows (image, x1, y1,
  x2, y2, score, label); ap<i>.info [3]: (images, classes, IoU threshold); ap<i>.ap [classes] (nan
  for a class without ground truth) and ap<i>.map [1], from voc_ap below: an implementation of the
  PASCAL VOC2010+ devkit (VOCevaldet.m, VOCap.m) written in numpy after py-faster-rcnn's
  voc_eval.py, independent of the C++ one. Differences from voc_eval.py, all as the C++ documents:
  IoU without the "+ 1" pixel, a match needs IoU >= threshold (VOCevaldet.m; voc_eval.py has >),
  the sort is stable, no "difficult" boxes.
- coder.*: torchvision's BoxCoder (encode_single, decode_single) with weights (1, 1, 1, 1) and
  (10, 10, 5, 5), and torchvision.ops.clip_boxes_to_image.
"""
import os

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import clip_boxes_to_image

rng = np.random.default_rng(14)
LINES = []


def put(name, a):
    a = np.asarray(a, dtype=np.float64)
    dims = ",".join(str(d) for d in a.shape)
    LINES.append(f"{name} [{dims}] float64 " + " ".join(repr(float(v)) for v in a.reshape(-1)))


def iou_one_to_many(b, gts):
    ixmin = np.maximum(gts[:, 0], b[0])
    iymin = np.maximum(gts[:, 1], b[1])
    ixmax = np.minimum(gts[:, 2], b[2])
    iymax = np.minimum(gts[:, 3], b[3])
    iw = np.maximum(ixmax - ixmin, 0.0)
    ih = np.maximum(iymax - iymin, 0.0)
    inters = iw * ih
    uni = (b[2] - b[0]) * (b[3] - b[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inters
    return np.where(uni > 0, inters / np.where(uni > 0, uni, 1.0), 0.0)


def voc_ap_class(truth, det, label, thr):
    """truth rows (image, x1, y1, x2, y2, label), det rows (image, x1, y1, x2, y2, score, label)."""
    gt = truth[truth[:, 5] == label]
    npos = len(gt)
    if npos == 0:
        return float("nan")
    d = det[det[:, 6] == label]
    order = np.argsort(-d[:, 5], kind="stable")
    d = d[order]
    used = np.zeros(npos, dtype=bool)
    tp = np.zeros(len(d))
    fp = np.zeros(len(d))
    for i, row in enumerate(d):
        idx = np.nonzero(gt[:, 0] == row[0])[0]
        ovmax = -np.inf
        if len(idx):
            ov = iou_one_to_many(row[1:5], gt[idx, 1:5])
            j = int(np.argmax(ov))
            ovmax = ov[j]
        if ovmax >= thr and not used[idx[j]]:
            tp[i] = 1
            used[idx[j]] = True
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def random_case(n_images, classes, thr, tie_scores=False, empty_class=None):
    truth, det = [], []
    labels = [c for c in range(classes) if c != empty_class]
    for img in range(n_images):
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 50, 2)
            w, h = rng.uniform(5, 25, 2)
            lab = labels[rng.integers(0, len(labels))]
            truth.append([img, x, y, x + w, y + h, lab])
            for _copy in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
                j = rng.normal(0, rng.uniform(0.05, 0.35), 4) * np.array([w, h, w, h])
                dl = lab if rng.uniform() > 0.1 else rng.integers(0, classes)
                det.append([img, x + j[0], y + j[1], x + w + j[2], y + h + j[3], 0.0, dl])
        for _ in range(rng.integers(0, 3)):  # false positives anywhere
            x, y = rng.uniform(0, 50, 2)
            w, h = rng.uniform(5, 25, 2)
            det.append([img, x, y, x + w, y + h, 0.0, rng.integers(0, classes)])
    if not truth:
        truth.append([0, 1.0, 2.0, 11.0, 14.0, labels[0]])
    if not det:
        det.append([0, 1.5, 2.0, 11.0, 13.0, 0.0, labels[0]])
    truth, det = np.array(truth, dtype=np.float64), np.array(det, dtype=np.float64)
    det[:, 5] = rng.integers(0, 5, len(det)) / 4 if tie_scores else rng.uniform(0, 1, len(det))
    return truth, det


cases = [
    (1, 1, 0.5, False, None),
    (3, 2, 0.5, False, None),
    (4, 3, 0.5, False, None),
    (6, 3, 0.5, False, None),
    (6, 4, 0.5, False, 3),     # class 3 has detections but no ground truth: skipped (nan)
    (5, 3, 0.5, True, None),   # scores on a grid of 5 values: ties broken by position
    (5, 3, 0.7, False, None),  # a stricter threshold
    (6, 2, 0.3, False, None),
    (8, 5, 0.5, False, None),
]
for k, (n_images, classes, thr, ties, empty) in enumerate(cases):
    truth, det = random_case(n_images, classes, thr, ties, empty)
    aps = [voc_ap_class(truth, det, c, thr) for c in range(classes)]
    valid = [a for a in aps if not np.isnan(a)]
    put(f"ap{k}.truth", truth)
    put(f"ap{k}.det", det)
    put(f"ap{k}.info", [n_images, classes, thr])
    put(f"ap{k}.ap", aps)
    put(f"ap{k}.map", [np.mean(valid)])

# ---- box coding, torchvision's BoxCoder ----
n = 12
xy = torch.rand(n, 2, dtype=torch.float64) * 40
wh = torch.rand(n, 2, dtype=torch.float64) * 20 + 2
proposals = torch.cat([xy, xy + wh], 1)
gxy = xy + torch.randn(n, 2, dtype=torch.float64) * 3
gwh = wh * torch.exp(torch.randn(n, 2, dtype=torch.float64) * 0.3)
boxes = torch.cat([gxy, gxy + gwh], 1)
codes = torch.randn(n, 4, dtype=torch.float64)
codes[0, 2] = 6.0    # beyond the clip log(1000 / 16) with weights 1; 6 / 5 is not with weights 5
codes[1, 3] = 30.0   # beyond it with both
put("coder.proposals", proposals)
put("coder.boxes", boxes)
put("coder.codes", codes)
for name, weights in (("w1", (1.0, 1.0, 1.0, 1.0)), ("w10", (10.0, 10.0, 5.0, 5.0))):
    coder = BoxCoder(weights)
    put(f"coder.encoded_{name}", coder.encode_single(boxes, proposals))
    put(f"coder.decoded_{name}", coder.decode_single(codes, proposals))
put("coder.clipped", clip_boxes_to_image(boxes * 1.5 - 10, (30, 40)))  # size (height, width)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detection.txt")
with open(path, "w") as f:
    f.write(f"# generated by tests/golden/generate_detection.py with numpy {np.__version__}, "
            f"torchvision {torchvision.__version__}; do not edit\n")
    f.write("\n".join(LINES) + "\n")
print(f"wrote {len(LINES)} tensors to {path}")
