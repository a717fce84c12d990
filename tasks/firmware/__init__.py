"""Talk 06/08 - Device firmware (issue #13): root filesystem, FIT image, U-Boot build, QEMU
boot, expected measurements.
"""
