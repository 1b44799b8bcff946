"""The CIFAR-10 CNN: three stages of two conv-BatchNorm-ReLU blocks, max-pooling between stages,
global average pooling and one linear classifier. `width` is the channel count of the first
stage; the later stages use 2x and 4x. At width 32 it has about 0.29 M parameters and 39 M
multiply-accumulates per 32x32 image."""

from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # No conv bias: the BatchNorm shift that follows makes it redundant.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CifarCNN(nn.Module):
    def __init__(self, *, width: int = 32, num_classes: int = 10):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            conv_block(3, w1), conv_block(w1, w1), nn.MaxPool2d(2),
            conv_block(w1, w2), conv_block(w2, w2), nn.MaxPool2d(2),
            conv_block(w2, w3), conv_block(w3, w3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
