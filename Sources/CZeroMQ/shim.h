#ifndef SWITCHBOARD_CZEROMQ_SHIM_H
#define SWITCHBOARD_CZEROMQ_SHIM_H
#include <zmq.h>
#include <errno.h>
#endif
