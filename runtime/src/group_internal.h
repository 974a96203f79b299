/*
 * group_internal.h - what the patterns need of an error group beyond
 * kanal/group.h (internal).
 */
#ifndef KN_GROUP_INTERNAL_H
#define KN_GROUP_INTERNAL_H

#include <stdbool.h>

#include "kanal/group.h"

/* After kn_group_wait: did a task end without an error while the group's
 * context was cancelled (was the group cut short from outside)? */
bool group_cut(kn_group *g);

#endif
