"""The model files that ship with the toolkit, found through this package from a checkout and from
an install alike (`pip install .` puts this folder into site-packages beside the cnn_*.py modules).

The model card is README.md beside this file; YuNet's licence and attribution are in yunet/.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "fer2013.keras")          # the shipped model (Keras, float16 weights)
# The same network with its weights stored as int8, run by LiteRT without TensorFlow: the same
# PublicTest accuracy, several times faster a face on a CPU (docs/speed.md, "The fast models").
FAST = os.path.join(HERE, "fer2013_int8.tflite")
# A network a quarter the size (fer_sota), taught by the shipped one, int8: about 3 times faster
# again, some 2 points less accurate (README.md beside this file, "The fast and the fastest models").
FASTEST = os.path.join(HERE, "fer2013_fastest.tflite")
# YuNet-n, a 76k-parameter face detector (Apache-2.0; yunet/LICENSE and yunet/README.md), run by
# OpenCV's FaceDetectorYN. The file's input is declared 640x640; OpenCV runs it at any size.
YUNET = os.path.join(HERE, "yunet", "yunet_n_640_640.onnx")
