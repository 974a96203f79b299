/* An outside program built against an installed kanal: a value through a
 * channel, across a thread. */
#include <pthread.h>
#include <stdio.h>

#include <kanal/kanal.h>

static void *producer(void *arg)
{
	int v = 42;

	kn_chan_send(arg, &v);
	kn_chan_close(arg);
	return NULL;
}

int main(void)
{
	kn_chan *ch = kn_chan_new(sizeof(int), 0);
	pthread_t t;
	int v = 0, r;

	if (!ch || pthread_create(&t, NULL, producer, ch))
		return 1;
	r = kn_chan_recv(ch, &v);
	pthread_join(t, NULL);
	if (r || v != 42 || kn_chan_recv(ch, &v) != EPIPE)
		return 1;
	kn_chan_free(ch);
	puts("consumer: ok");
	return 0;
}
