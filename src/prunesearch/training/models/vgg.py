"""VGG-16 with BatchNorm, CIFAR variant (as in Li et al., ICLR 2017): thirteen 3x3 convolutions in
five stages of `width` x (1, 2, 4, 8, 8) channels (64 to 512 at width 64), max-pooling after
each stage, then a 512-wide hidden layer and the classifier. At width 64: 15.0 M parameters,
313 M multiply-accumulates per 32x32 image."""

from torch import nn

STAGES = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))  # (channels / width, convolutions)


class Vgg16BN(nn.Module):
    def __init__(self, *, width: int = 64, num_classes: int = 10):
        super().__init__()
        layers, channels = [], 3
        for factor, convs in STAGES:
            for _ in range(convs):
                layers += [nn.Conv2d(channels, factor * width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(factor * width), nn.ReLU(inplace=True)]
                channels = factor * width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(channels, 8 * width), nn.BatchNorm1d(8 * width),
                                    nn.ReLU(inplace=True))
        self.classifier = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.hidden(self.features(x)))


def vgg16_bn(*, width: int = 64, num_classes: int = 10) -> Vgg16BN:
    return Vgg16BN(width=width, num_classes=num_classes)
