"""The edge's ImageNet classifier for real photos: built at set-up from the installed
efficientnet packages, labels scikit-image's photos as ImageNet would, says how to build it
when it is missing, and a camera's settings follow it."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from edgebus.codecs.assets import assets_dir, read_card
from edgebus.codecs.classifier import Classifier
from edgebus.codecs.errors import ModelFileError
from edgebus.config import Settings
from edgebus.launch_plan import PHOTO_DEFAULTS, up_defaults
from edgebus.nodes.codec_choice import parse_codec
from edgebus.nodes.sources import UNKNOWN_LABEL, FolderSource, fit_image

pytestmark = pytest.mark.timeout(120)

CAT_CLASSES = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from edgebus.ml.photos import write_photos

    folder = tmp_path_factory.mktemp("photos")
    return {path.stem: path for path in write_photos(folder)}


@pytest.fixture(scope="module")
def imagenet():
    return Classifier("imagenet")


def test_the_card_names_the_thousand_imagenet_classes():
    card = read_card("imagenet_classifier.json")
    assert len(card["classes"]) == 1000 and len(set(card["synsets"])) == 1000
    assert card["classes"][0].startswith("tench") and card["classes"][967] == "espresso"
    assert card["input"]["size"] == 224


def test_real_photos_get_their_imagenet_labels_through_the_default_codec(photos, imagenet):
    """What the edge sees: the camera's 224 px crop, WebP at quality 20, decoded."""
    codec = parse_codec(PHOTO_DEFAULTS["codec"]).build(224)
    top1 = {}
    for name, path in photos.items():
        with Image.open(path) as image:
            frame = fit_image(image, 224)
        data = b"".join(codec.encode_stream(frame))
        assert len(data) < 4000  # a photo fits a few kB
        top1[name] = imagenet.topk(codec.decode_batch([data])[0].image, 1).names[0]
    assert top1["chelsea"] in CAT_CLASSES
    assert top1["coffee"] == "espresso"
    assert top1["camera"] == "tripod"
    assert top1["rocket"] in {"missile", "projectile, missile", "space shuttle"}


def test_a_missing_built_model_says_how_to_build_it(tmp_path):
    shutil.copy(assets_dir() / "imagenet_classifier.json", tmp_path)
    with pytest.raises(ModelFileError, match=r"built at set-up.*edgebus train imagenet"):
        Classifier("imagenet", root=tmp_path)


def test_export_matches_torch(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    from edgebus.ml.imagenet_export import PARITY_TOLERANCE, export_imagenet_classifier

    report = export_imagenet_classifier(tmp_path)
    assert report.path == tmp_path / "imagenet_classifier.onnx" and report.path.stat().st_size
    assert report.max_logit_difference < PARITY_TOLERANCE
    assert json.loads((tmp_path / "imagenet_classifier.json").read_text())["classes"][967] == (
        "espresso"
    )


def test_class_folders_are_labelled_by_the_classifiers_names(tmp_path, photos):
    classes = read_card("imagenet_classifier.json")["classes"]
    for folder, photo in (("espresso", "coffee"), ("tabby", "chelsea"), ("my-holiday", "rocket")):
        (tmp_path / folder).mkdir()
        shutil.copy(photos[photo], tmp_path / folder)
    labels = {path.parent.name: label for path, label in FolderSource(tmp_path, 224, classes).items}
    assert labels == {"espresso": 967, "tabby": 281, "my-holiday": UNKNOWN_LABEL}
    # Without the classifier's names, class folders count in sorted order, as before.
    plain = {path.parent.name: label for path, label in FolderSource(tmp_path, 64).items}
    assert plain == {"espresso": 0, "my-holiday": 1, "tabby": 2}


def test_up_gives_a_photo_fleet_what_it_left_unset():
    def configured(*keys: str):
        return lambda key: key in keys

    shapes = up_defaults(Settings(), configured())
    assert (shapes.classifier, shapes.link, shapes.frame_width) == ("strong", "switching", 64)
    photos = up_defaults(Settings(source="folder:/p"), configured("source"))
    assert (photos.classifier, photos.frame_width, photos.codec, photos.link) == (
        "imagenet", 224, "webp20", "off"
    )  # fmt: skip
    mine = up_defaults(
        Settings(source="folder:/p", codec="pjpeg50", link="light"),
        configured("source", "codec", "link"),
    )
    assert (mine.classifier, mine.codec, mine.link) == ("imagenet", "pjpeg50", "light")
    own_model = up_defaults(
        Settings(source="folder:/p", classifier="strong"), configured("source", "classifier")
    )
    assert (own_model.classifier, own_model.frame_width, own_model.link) == (
        "strong",
        64,
        "switching",
    )


def test_a_224_px_pnc_distils_from_the_imagenet_classifier(tmp_path, imagenet):
    """The photos' PNC path, tiny: crops of scikit-image's other images to train on, the
    five sample photos (25 views) to score on, labelled by the classifier's own top-1 on
    the uncompressed view, so the card's accuracy is agreement with the teacher."""
    from edgebus.ml.photos import TRAINING_FILES, photo_test_set, photo_training_set
    from edgebus.ml.train_pnc import train_and_export

    split, train = photo_training_set(6, seed=3)
    assert train.images.shape == (6, 224, 224, 3) and split.kind == "photos"
    assert not {"chelsea.png", "coffee.png", "rocket.jpg"} & set(TRAINING_FILES)
    test = photo_test_set(lambda x: imagenet.logits(x).argmax(axis=1))
    assert len(test) == 25 and test.labels[5] == imagenet.class_names.index("espresso")
    (card,) = train_and_export(
        "pnc", tmp_path, assets_dir(), image_size=224, stride=7, scale=0.001,
        train_images=6, threads=2, show_progress=False, data="photos",
    )  # fmt: skip
    assert card["name"] == "imagenet_pnc224" and card["feature_shape"] == [10, 32, 32]
    assert card["distilled_from"] == "imagenet_classifier.json"
    assert card["test"]["eval_images"] == 25 and len(card["test"]["top1_by_features"]) == 10
