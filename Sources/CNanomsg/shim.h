// Constants that nanomsg defines as macro expressions, which Swift cannot import.
#ifndef DPPO_CNANOMSG_SHIM_H
#define DPPO_CNANOMSG_SHIM_H
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>

static inline int dppo_nn_push(void) { return NN_PUSH; }
static inline int dppo_nn_pull(void) { return NN_PULL; }
static inline int dppo_nn_pub(void) { return NN_PUB; }
static inline int dppo_nn_sub(void) { return NN_SUB; }
static inline int dppo_nn_req(void) { return NN_REQ; }
static inline int dppo_nn_rep(void) { return NN_REP; }
static inline int dppo_nn_sub_subscribe(void) { return NN_SUB_SUBSCRIBE; }
static inline int dppo_nn_req_resend_ivl(void) { return NN_REQ_RESEND_IVL; }
static inline size_t dppo_nn_msg(void) { return NN_MSG; }
#endif
