// Паттерн Worker Pool: задачи приходят через канал jobs, несколько воркеров
// берут их по очереди, результаты возвращаются через канал results.
package main

import (
	"log"
	"sort"
	"sync"
)

const (
	numJobs    = 9
	numWorkers = 3
)

// result — результат одной задачи
type result struct {
	job   int
	value int
}

// worker забирает задачи из jobs, пока канал не закроют
func worker(jobs <-chan int, results chan<- result, wg *sync.WaitGroup) {
	defer wg.Done()

	for j := range jobs {
		results <- result{job: j, value: j * j}
	}
}

func main() {
	jobs := make(chan int, numJobs)
	results := make(chan result, numJobs)

	var wg sync.WaitGroup

	// запускаем пул воркеров
	for w := 1; w <= numWorkers; w++ {
		wg.Add(1)
		go worker(jobs, results, &wg)
	}

	// отправляем задачи и закрываем канал: мы его отправитель
	for j := 1; j <= numJobs; j++ {
		jobs <- j
	}
	close(jobs)

	// когда все воркеры закончили, результатов больше не будет
	go func() {
		wg.Wait()
		close(results)
	}()

	// задачи завершаются в непредсказуемом порядке — сортируем по номеру
	var all []result
	for res := range results {
		all = append(all, res)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].job < all[j].job })

	for _, res := range all {
		log.Println("задача", res.job, "результат", res.value)
	}
}
