"""The CIFAR ResNets of He et al. (2016, section 4.2): a 3x3 stem, three stages of n basic blocks
at `width`, 2x and 4x channels (16/32/64 at width 16), global average pooling, one linear
classifier; depth 6n + 2. A block that changes the resolution or the channel count has a 1x1
convolution with BatchNorm on its shortcut (option B), which torch-pruning's dependency graph
follows when a channel of a residual sum is removed. That stride-2 1x1 convolution is written
as subsampling (a 1x1 pooling of stride 2) then a 1x1 convolution: the same function and cost,
but torch 2.14's CPU backward of a stride-2 1x1 convolution on channels_last inputs sometimes
never returns (seen here, one thread or two). ResNet-56 at width 16: 0.86 M parameters,
126 M multiply-accumulates per 32x32 image."""

from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(1, stride=stride),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, *, blocks_per_stage: int, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, channels = [], width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.pool(self.stages(self.stem(x))))


def resnet20(*, width: int = 16, num_classes: int = 10) -> CifarResNet:
    return CifarResNet(blocks_per_stage=3, width=width, num_classes=num_classes)


def resnet56(*, width: int = 16, num_classes: int = 10) -> CifarResNet:
    return CifarResNet(blocks_per_stage=9, width=width, num_classes=num_classes)
