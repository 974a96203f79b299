// Паттерн Семафор: из 100 HTTP-запросов одновременно выполняются не больше 20.
// Семафор — буферизованный канал: отправка в него занимает место,
// получение из него освобождает.
package main

import (
	"log"
	"sync"
	"time"
)

const (
	numRequests = 100
	maxParallel = 20
)

// Semaphore структура семафора
type Semaphore struct {
	semaCh chan struct{}
}

// NewSemaphore создает семафор с буферизованным каналом емкостью maxReq
func NewSemaphore(maxReq int) *Semaphore {
	return &Semaphore{
		semaCh: make(chan struct{}, maxReq),
	}
}

// Acquire: перед запросом отправляем пустую структуру в канал semaCh;
// если канал полон, горутина ждёт
func (s *Semaphore) Acquire() {
	s.semaCh <- struct{}{}
}

// Release: после запроса забираем пустую структуру из канала semaCh
func (s *Semaphore) Release() {
	<-s.semaCh
}

// counter считает запросы, выполняющиеся прямо сейчас, и запоминает максимум
type counter struct {
	mu       sync.Mutex
	active   int
	maxSeen  int
	finished int
}

func (c *counter) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active++
	if c.active > c.maxSeen {
		c.maxSeen = c.active
	}
}

func (c *counter) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	c.finished++
}

func main() {
	var wg sync.WaitGroup
	var stats counter
	semaphore := NewSemaphore(maxParallel)

	for i := 0; i < numRequests; i++ {
		wg.Add(1)

		go func() {
			defer wg.Done()

			semaphore.Acquire()
			defer semaphore.Release()

			stats.start()
			fakeRequest()
			stats.finish()
		}()
	}

	wg.Wait()

	log.Println("Максимум одновременных запросов:", stats.maxSeen)
	log.Println("Выполнено запросов:", stats.finished)
}

// fakeRequest имитирует HTTP-запрос: просто ждёт ответа «сервера»
func fakeRequest() {
	time.Sleep(50 * time.Millisecond)
}
