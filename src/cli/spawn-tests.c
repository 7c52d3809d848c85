/* `tests` of a request (see spawn.h). */
#include "spawn.h"

json_t *spawn_tests_run(const struct spawn_req *req, struct cdn_err *err)
{
	(void)req;
	err_set(err, ENOSYS, "tests are not implemented yet");
	return NULL;
}
