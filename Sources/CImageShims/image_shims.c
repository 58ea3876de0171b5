#include "image_shims.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

// The header calls accept any size the formats allow, so the Swift caller can
// refuse oversized images with its own caps (checked before decoding).
#define AISLFD_PNG_MAX_SIDE 0x7fffffffu
#define AISLFD_JPEG_MAX_SIDE 65535u
// A progressive JPEG may hold many scans; this stops files made of endless scans.
#define AISLFD_MAX_JPEG_SCANS 1000

static void set_message(aislfd_image_info *info, const char *message) {
    snprintf(info->message, sizeof info->message, "%s", message);
}

// MARK: PNG

struct png_source {
    const unsigned char *data;
    size_t size;
    size_t position;
    aislfd_image_info *info;
    // Set while the pixel rows are read: a warning then means missing or garbled pixel data.
    int reading_rows;
    unsigned int rows_done;
    int pass;
    int interlaced;
};

// Names how far the pixel data got when it ran out or went wrong.
static void png_fail_rows(png_structp png, struct png_source *source, const char *what) {
    aislfd_image_info *info = source->info;
    if (source->interlaced) {
        snprintf(info->message, sizeof info->message, "%s: interlace pass %d of 7", what, source->pass + 1);
    } else {
        snprintf(info->message, sizeof info->message, "%s: %u of %u rows", what, source->rows_done, info->height);
    }
    info->truncated = strcmp(what, "truncated") == 0;
    png_longjmp(png, 1);
}

static void png_read_from_memory(png_structp png, png_bytep out, size_t count) {
    struct png_source *source = (struct png_source *)png_get_io_ptr(png);
    if (count > source->size - source->position) {
        if (source->reading_rows) png_fail_rows(png, source, "truncated");
        png_error(png, "file is truncated");
    }
    memcpy(out, source->data + source->position, count);
    source->position += count;
}

static void png_on_row(png_structp png, png_uint_32 row, int pass) {
    struct png_source *source = (struct png_source *)png_get_io_ptr(png);
    source->rows_done = row;
    source->pass = pass;
}

static void png_on_error(png_structp png, png_const_charp message) {
    struct png_source *source = (struct png_source *)png_get_io_ptr(png);
    if (source && source->reading_rows) {
        // "Not enough image data", "Truncated compressed data": the rows stop early.
        if (strstr(message, "ot enough") || strstr(message, "runcated")) png_fail_rows(png, source, "truncated");
        char what[200];
        snprintf(what, sizeof what, "corrupt pixel data (%s)", message);
        png_fail_rows(png, source, what);
    }
    set_message((aislfd_image_info *)png_get_error_ptr(png), message);
    png_longjmp(png, 1);
}

// Warnings about ancillary chunks (an sRGB profile, a text chunk) leave the pixels intact and
// are ignored, as every decoder ignores them; a warning while the rows are read means the
// pixel data is short or garbled (libpng would fill the rest), and is an error.
static void png_on_warning(png_structp png, png_const_charp message) {
    struct png_source *source = (struct png_source *)png_get_io_ptr(png);
    if (source && source->reading_rows) png_on_error(png, message);
    // A chunk longer than png_set_chunk_malloc_max allows (longer than the file) is only a
    // benign error to libpng, which then allocates the claimed length anyway.
    if (strstr(message, "chunk data is too large")) png_on_error(png, message);
}

static int png_run(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                   aislfd_image_info *info) {
    memset(info, 0, sizeof *info);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, info, png_on_error, png_on_warning);
    if (!png) {
        set_message(info, "libpng could not start");
        return 1;
    }
    png_infop png_info = png_create_info_struct(png);
    if (!png_info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(info, "libpng could not start");
        return 1;
    }
    struct png_source source = {data, size, 0, info, 0, 0, 0, 0};
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &png_info, NULL);
        return 1;
    }
    png_set_read_fn(png, &source, png_read_from_memory);
    png_set_read_status_fn(png, png_on_row);
    // Benign errors (too much image data, bad CRCs of ancillary chunks) are warnings: see png_on_warning.
    png_set_benign_errors(png, 1);
    png_set_user_limits(png, AISLFD_PNG_MAX_SIDE, AISLFD_PNG_MAX_SIDE);
    // libpng allocates an ancillary chunk's claimed length before reading it: no chunk can be
    // longer than the file (a 107-byte file claimed a 1 GB eXIf chunk, found by tools/fuzz.sh;
    // png_on_warning makes the overlong claim an error).
    png_set_chunk_malloc_max(png, size > 0 ? size : 1);
    png_set_chunk_cache_max(png, 1000);
    png_read_info(png, png_info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, png_info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    info->width = width;
    info->height = height;
    info->bit_depth = bit_depth;
    info->color_type = color_type;
    info->channels = png_get_channels(png, png_info);
    source.interlaced = interlace != PNG_INTERLACE_NONE;
    if (!rgb) {
        png_destroy_read_struct(&png, &png_info, NULL);
        return 0;
    }
    if (rgb_size != (size_t)width * height * 3) png_error(png, "output buffer does not match the image size");

    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // Expanding a palette also turns tRNS into an alpha channel: strip it as well.
    if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, png_info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (!(color_type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, png_info);
    if (png_get_rowbytes(png, png_info) != (size_t)width * 3) png_error(png, "unexpected row layout after conversion to RGB");

    rows = malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory for row pointers");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = rgb + (size_t)y * width * 3;
    source.reading_rows = 1;
    png_read_image(png, rows);
    source.reading_rows = 0;
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &png_info, NULL);
    return 0;
}

int aislfd_png_info(const unsigned char *data, size_t size, aislfd_image_info *info) {
    return png_run(data, size, NULL, 0, info);
}

int aislfd_png_decode_rgb(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                          aislfd_image_info *info) {
    if (!rgb) {
        memset(info, 0, sizeof *info);
        set_message(info, "no output buffer");
        return 1;
    }
    return png_run(data, size, rgb, rgb_size, info);
}

// MARK: JPEG

struct jpeg_failure {
    struct jpeg_error_mgr manager;  // first, so libjpeg's error pointer is this struct's address
    jmp_buf jump;
    aislfd_image_info *info;
};

static void jpeg_on_error(j_common_ptr cinfo) {
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    set_message(failure->info, text);
    longjmp(failure->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    int code = cinfo->err->msg_code;
    // Metadata oddities leave the pixels intact.
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC || code == JWRN_EXTRANEOUS_DATA) return;
    // Anything else is about the compressed data, which libjpeg would pad with gray.
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    j_decompress_ptr decompress = (j_decompress_ptr)cinfo;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
        snprintf(failure->info->message, sizeof failure->info->message, "truncated: %u of %u rows",
                 decompress->output_scanline, decompress->image_height);
        failure->info->truncated = 1;
        longjmp(failure->jump, 1);
    }
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(failure->info->message, sizeof failure->info->message, "%s (at row %u of %u)", text,
             decompress->output_scanline, decompress->image_height);
    longjmp(failure->jump, 1);
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    j_decompress_ptr decompress = (j_decompress_ptr)cinfo;
    if (decompress->input_scan_number > AISLFD_MAX_JPEG_SCANS) {
        struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
        set_message(failure->info, "more than 1000 progressive scans");
        longjmp(failure->jump, 1);
    }
}

static int jpeg_run(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                    aislfd_image_info *info) {
    memset(info, 0, sizeof *info);
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure failure;
    struct jpeg_progress_mgr progress;
    memset(&progress, 0, sizeof progress);
    progress.progress_monitor = jpeg_on_progress;
    failure.info = info;
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_on_error;
    failure.manager.emit_message = jpeg_on_message;
    if (setjmp(failure.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    info->width = cinfo.image_width;
    info->height = cinfo.image_height;
    info->channels = cinfo.num_components;
    info->bit_depth = cinfo.data_precision;
    info->color_type = cinfo.jpeg_color_space;
    info->arithmetic = cinfo.arith_code;
    if (!rgb) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    if (cinfo.jpeg_color_space != JCS_GRAYSCALE && cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_RGB) {
        set_message(info, "unsupported JPEG colour space (CMYK or YCCK)");
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    if (cinfo.image_width == 0 || cinfo.image_height == 0 || cinfo.image_width > AISLFD_JPEG_MAX_SIDE ||
        cinfo.image_height > AISLFD_JPEG_MAX_SIDE || rgb_size != (size_t)cinfo.image_width * cinfo.image_height * 3) {
        set_message(info, "output buffer does not match the image size");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height || cinfo.output_components != 3) {
        set_message(info, "unexpected output layout");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + (size_t)cinfo.output_scanline * cinfo.output_width * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int aislfd_jpeg_info(const unsigned char *data, size_t size, aislfd_image_info *info) {
    return jpeg_run(data, size, NULL, 0, info);
}

int aislfd_jpeg_decode_rgb(const unsigned char *data, size_t size, unsigned char *rgb, size_t rgb_size,
                           aislfd_image_info *info) {
    if (!rgb) {
        memset(info, 0, sizeof *info);
        set_message(info, "no output buffer");
        return 1;
    }
    return jpeg_run(data, size, rgb, rgb_size, info);
}
