// MuJoCo's C API from Debian's libmujoco-dev (2.2.x), plus one helper Swift cannot write comfortably:
// mjVFS holds fixed 2000 × 1000-byte name arrays that Swift would import as giant tuples.
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Compiles an MJCF document held in memory; on failure returns NULL with the parser's message in `error`.
/* MuJoCo's warnings go to standard error, one line each, instead of to MUJOCO_LOG.TXT in the working directory.
   A C function, so that Swift sets no C global itself (mju_user_warning is process-wide mutable state). */
static void dppo_mj_warning_to_stderr(const char* message) {
    if (message) fprintf(stderr, "MuJoCo warning: %s\n", message);
}

static inline void dppo_mj_send_warnings_to_stderr(void) {
    mju_user_warning = dppo_mj_warning_to_stderr;
}

static inline mjModel* dppo_mj_load_xml_string(const char* xml, char* error, int error_size) {
    mjVFS* vfs = (mjVFS*)malloc(sizeof(mjVFS));
    if (!vfs) { snprintf(error, error_size, "out of memory"); return NULL; }
    mj_defaultVFS(vfs);
    int size = (int)strlen(xml);
    if (mj_makeEmptyFileVFS(vfs, "model.xml", size) != 0) {
        free(vfs);
        snprintf(error, error_size, "could not create an in-memory model file");
        return NULL;
    }
    int index = mj_findFileVFS(vfs, "model.xml");
    memcpy(vfs->filedata[index], xml, size);
    mjModel* model = mj_loadXML("model.xml", vfs, error, error_size);
    mj_deleteVFS(vfs);
    free(vfs);
    return model;
}
