import numpy as np
import pytest
from PIL import Image

from edgebus.nodes.sources import SourceError, SyntheticSource, open_source
from edgebus.shapes import render_shape


def test_synthetic_frames_are_the_procedural_set():
    source = SyntheticSource(64, seed=0, start=13_000)
    frame = source.frame(5)
    image, label = render_shape(0, 13_005, 64)
    assert np.array_equal(frame.image, image) and frame.label == label


def test_folder_source_labels_by_class_folder(tmp_path):
    for name, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        (tmp_path / name).mkdir()
        Image.new("RGB", (80, 40), colour).save(tmp_path / name / "a.png")
    source = open_source(f"folder:{tmp_path}", size=32)
    frames = [source.frame(i) for i in range(3)]
    assert [f.label for f in frames] == [0, 1, 0]  # loops over the two images
    assert frames[1].image.shape == (32, 32, 3) and frames[1].image[0, 0, 1] == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "camera",
            "expected synthetic, folder:<dir>, video:<file>, accelerometer, shapes28 or "
            "fashion-mnist",
        ),
        ("folder:/nonexistent/dir", "expected a directory"),
        ("video:/nonexistent.mp4", "video"),
    ],
)
def test_bad_sources_are_one_line(spec, message):
    with pytest.raises(SourceError, match=message) as info:
        open_source(spec)
    assert "\n" not in str(info.value)


def test_camera_with_a_bad_source_or_link_is_a_config_error(tmp_path):
    from edgebus.config import ConfigError, Settings
    from edgebus.nodes.camera import CameraNode

    for key, value in (("source", "folder:/nonexistent"), ("link", str(tmp_path / "x.csv"))):
        settings = Settings(node_id="cam", store_enabled=False, **{key: value})
        with pytest.raises(ConfigError, match="camera cam: "):
            CameraNode(settings)


def test_fashion_mnist_is_images_for_an_image_codec_and_vectors_for_qos(fashion_mnist_dir):
    from edgebus.config import ConfigError, Settings
    from edgebus.fashion_mnist import read_fashion_mnist
    from edgebus.nodes.camera import CameraNode

    images, labels = read_fashion_mnist(fashion_mnist_dir, train=False)
    source = open_source("fashion-mnist", size=28)
    frame = source.frame(10_003)  # cycles through the 10,000 test images
    assert frame.image.shape == (28, 28, 3) and frame.label == labels[3]
    assert all(np.array_equal(frame.image[..., c], images[3]) for c in range(3))
    vector = open_source("fashion-mnist", flat=True).frame(3)
    assert vector.image.shape == (784,) and vector.label == labels[3]
    with pytest.raises(SourceError, match="28 px") as info:
        open_source("fashion-mnist", size=64)
    assert "\n" not in str(info.value)
    # A camera with an image codec takes the images; the generated flat sets stay QoS-only.
    CameraNode(Settings(node_id="f1", store_enabled=False, source="fashion-mnist", codec="webp20",
                        frame_width=28, frame_height=28))  # fmt: skip
    with pytest.raises(ConfigError, match="set codec qos"):
        CameraNode(Settings(node_id="f2", store_enabled=False, source="shapes28", codec="webp20"))
