// Thin wrappers around libpng and libjpeg decoding. Both libraries report errors
// by longjmp (libpng) or by an error_exit that must not return (libjpeg); a
// longjmp must never cross Swift frames, so the setjmp lives here in C and the
// wrappers return a status code and a message instead.
#ifndef AISLFD_IMAGE_SHIMS_H
#define AISLFD_IMAGE_SHIMS_H

#include <stddef.h>

typedef struct {
    unsigned int width;
    unsigned int height;
    /// Samples per pixel in the file (PNG: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA, 1 palette; JPEG: components).
    int channels;
    /// Bits per sample in the file (PNG: 1, 2, 4, 8, 16; JPEG: 8).
    int bit_depth;
    /// PNG colour type, or libjpeg's J_COLOR_SPACE of the file.
    int color_type;
    /// JPEG: arithmetic-coded (any entropy coding compresses better than Huffman's bit per block).
    int arithmetic;
    /// Nonzero when decoding failed because the pixel data ends before the image does
    /// (`message` then says how many rows were decoded).
    int truncated;
    /// What went wrong, from the library, when a call returns nonzero.
    char message[256];
} aislfd_image_info;

/// Reads the PNG header. Returns 0 on success.
int aislfd_png_info(const unsigned char *data, size_t size, aislfd_image_info *info);

/// Decodes a PNG to 8-bit RGB the way PIL's `convert('RGB')` does: palette
/// expanded, gray replicated, alpha and tRNS dropped (not composited), 16-bit
/// samples cut to their high byte, 1/2/4-bit gray scaled to 8 bits, gamma and
/// colour chunks ignored. `rgb` holds width*height*3 bytes. The whole file up to
/// IEND must be present, and a warning while the rows are read (data missing or
/// garbled, which libpng would leave unfilled) is an error. Returns 0 on success.
int aislfd_png_decode_rgb(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                          aislfd_image_info *info);

/// Reads the JPEG header. Returns 0 on success.
int aislfd_jpeg_info(const unsigned char *data, size_t size, aislfd_image_info *info);

/// Decodes a grayscale, YCbCr or RGB JPEG to 8-bit RGB with libjpeg's defaults
/// (PIL's too: islow IDCT, fancy upsampling). Every libjpeg warning about the
/// compressed data (it ends early, hits a marker, has a bad Huffman code: libjpeg
/// would fill the rest with gray) is an error; warnings about metadata (JFIF
/// revision, Adobe transform, ICC profile, stray bytes between segments) are
/// ignored. Returns 0 on success.
int aislfd_jpeg_decode_rgb(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                           aislfd_image_info *info);

#endif
