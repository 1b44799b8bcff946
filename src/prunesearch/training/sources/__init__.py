"""Where a study's images come from: CIFAR-10 and CIFAR-100 (cifar), image folders (folder),
the user's own data sets (user); each returns uint8 images fitted to one size (pictures)."""
