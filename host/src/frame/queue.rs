//! The per-source frame queue between the streaming thread and the
//! strategy worker: bounded, lock-free, and never blocking the producer.
//! When full, the oldest frame is dropped (the newest is what matters for
//! live video) and the caller counts it. Object buffers are recycled
//! through a pool so the streaming thread does not allocate per frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::frame::CompactFrame;

pub struct FrameQueue {
    frames: ArrayQueue<CompactFrame>,
    pool: ArrayQueue<Vec<u8>>,
    closed: AtomicBool,
    /// The consumer thread, woken when a frame arrives. Set once, before
    /// frames flow; the lock is never held while waiting.
    consumer: Mutex<Option<Thread>>,
}

impl FrameQueue {
    pub fn new(depth: usize) -> Self {
        FrameQueue {
            frames: ArrayQueue::new(depth.max(1)),
            pool: ArrayQueue::new(depth.max(1) + 4),
            closed: AtomicBool::new(false),
            consumer: Mutex::new(None),
        }
    }

    /// Registers the calling thread as the consumer.
    pub fn register_consumer(&self) {
        if let Ok(mut consumer) = self.consumer.lock() {
            *consumer = Some(std::thread::current());
        }
    }

    /// A cleared buffer from the pool (or a new one).
    pub fn take_buffer(&self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    /// Returns a buffer to the pool.
    pub fn recycle(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let _ = self.pool.push(buffer);
    }

    /// Enqueues a frame; returns `true` when the oldest frame was dropped to
    /// make room. Never blocks.
    pub fn push(&self, frame: CompactFrame) -> bool {
        let displaced = self.frames.force_push(frame);
        let dropped = match displaced {
            Some(old) => {
                self.recycle(old.objects);
                true
            }
            None => false,
        };
        // try_lock: if the consumer is being registered right now it will
        // poll the queue anyway; never wait on the streaming thread.
        if let Ok(consumer) = self.consumer.try_lock() {
            if let Some(thread) = consumer.as_ref() {
                thread.unpark();
            }
        }
        dropped
    }

    /// Enqueues a frame of a source that is not paced by a clock (a file
    /// read as fast as possible): waits for room instead of dropping, so
    /// every frame is analysed. This is ordinary sink backpressure (like a
    /// sink waiting for its clock); it waits only for queue space, never on
    /// a lock, and gives up when `stop` is set. Returns `false` when the
    /// frame was discarded because of `stop`.
    pub fn push_waiting(&self, mut frame: CompactFrame, stop: &AtomicBool) -> bool {
        loop {
            match self.frames.push(frame) {
                Ok(()) => {
                    if let Ok(consumer) = self.consumer.try_lock() {
                        if let Some(thread) = consumer.as_ref() {
                            thread.unpark();
                        }
                    }
                    return true;
                }
                Err(back) => {
                    if stop.load(Ordering::Relaxed) {
                        self.recycle(back.objects);
                        return false;
                    }
                    frame = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }
    }

    /// Next frame, waiting up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Option<CompactFrame> {
        if let Some(frame) = self.frames.pop() {
            return Some(frame);
        }
        std::thread::park_timeout(timeout);
        self.frames.pop()
    }

    /// Wakes the consumer (it has commands to look at).
    pub fn wake(&self) {
        if let Ok(consumer) = self.consumer.lock() {
            if let Some(thread) = consumer.as_ref() {
                thread.unpark();
            }
        }
    }

    /// No more frames will come; the consumer drains and stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(consumer) = self.consumer.lock() {
            if let Some(thread) = consumer.as_ref() {
                thread.unpark();
            }
        }
    }

    pub fn is_closed_and_empty(&self) -> bool {
        self.closed.load(Ordering::Acquire) && self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(n: u64) -> CompactFrame {
        let mut f = CompactFrame::with_capacity(Arc::from("s"), 0);
        f.frame_number = n;
        f
    }

    #[test]
    fn drops_the_oldest_when_full() {
        let queue = FrameQueue::new(2);
        assert!(!queue.push(frame(1)));
        assert!(!queue.push(frame(2)));
        assert!(queue.push(frame(3)));
        assert_eq!(queue.pop(Duration::ZERO).unwrap().frame_number, 2);
        assert_eq!(queue.pop(Duration::ZERO).unwrap().frame_number, 3);
        assert!(queue.pop(Duration::from_millis(1)).is_none());
        queue.close();
        assert!(queue.is_closed_and_empty());
    }

    #[test]
    fn wakes_the_consumer() {
        let queue = Arc::new(FrameQueue::new(4));
        let consumer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                queue.register_consumer();
                let mut got = Vec::new();
                while got.len() < 3 {
                    if let Some(f) = queue.pop(Duration::from_secs(5)) {
                        got.push(f.frame_number);
                    }
                }
                got
            })
        };
        for n in 0..3 {
            while queue.len() >= 4 {
                std::thread::yield_now();
            }
            queue.push(frame(n));
        }
        assert_eq!(consumer.join().unwrap(), vec![0, 1, 2]);
    }
}
