//! A dataset's images read from object storage with many requests in flight: one request takes
//! tens of milliseconds, so the pipeline's few decode threads would wait on the network if each
//! read one image at a time.

use std::sync::Arc;

use bytes::Bytes;

use crate::{RemoteLocation, StoreError, block_on, runtime};

/// The images of a dataset below a remote root, fetched concurrently.
#[derive(Clone)]
pub struct RemoteImages {
    root: RemoteLocation,
    keys: Arc<[String]>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl RemoteImages {
    /// `keys[i]` is image `i`'s key relative to `root`; at most `concurrency` requests run at
    /// once.
    pub fn new(root: RemoteLocation, keys: Vec<String>, concurrency: usize) -> Self {
        Self {
            root,
            keys: keys.into(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
        }
    }

    /// Starts reading image `index` and returns; `deliver` gets its bytes (or the error)
    /// on an I/O thread. Blocks while as many requests as allowed are in flight, so the caller's
    /// pace is the store's.
    pub fn fetch(
        &self,
        index: usize,
        deliver: impl FnOnce(Result<Bytes, StoreError>) + Send + 'static,
    ) {
        let permit = block_on(self.in_flight.clone().acquire_owned())
            .expect("the semaphore is never closed");
        let root = self.root.clone();
        let keys = self.keys.clone();
        runtime().spawn(async move {
            let result = root.get_async(&keys[index]).await;
            drop(permit);
            deliver(result);
        });
    }

    /// Reads the images at `indices`, concurrently (as many at once as allowed), and returns
    /// their bytes in the order asked.
    pub fn read_many(&self, indices: &[usize]) -> Vec<Result<Bytes, StoreError>> {
        let reads = indices.iter().map(|&index| {
            let (root, keys, in_flight) =
                (self.root.clone(), self.keys.clone(), self.in_flight.clone());
            async move {
                let _permit = in_flight.acquire_owned().await.expect("never closed");
                root.get_async(&keys[index]).await
            }
        });
        block_on(futures_util::future::join_all(reads))
    }

    /// Reads image `index` and waits for it.
    pub fn read(&self, index: usize) -> Result<Bytes, StoreError> {
        self.root.get(&self.keys[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_arrives_once_whatever_the_order() {
        let root = RemoteLocation::open("memory://images/data").unwrap();
        let keys: Vec<String> = (0..200).map(|i| format!("c/{i:03}.png")).collect();
        for (i, key) in keys.iter().enumerate() {
            root.put(key, vec![i as u8; i + 1]).unwrap();
        }
        let images = RemoteImages::new(root, keys.clone(), 7);
        let (sender, receiver) = std::sync::mpsc::channel();
        for index in 0..keys.len() {
            let sender = sender.clone();
            images.fetch(index, move |bytes| sender.send((index, bytes)).unwrap());
        }
        drop(sender);
        let mut seen: Vec<_> = receiver.iter().collect();
        seen.sort_by_key(|(index, _)| *index);
        assert_eq!(seen.len(), keys.len());
        for (index, bytes) in seen {
            assert_eq!(bytes.unwrap().to_vec(), vec![index as u8; index + 1]);
        }
        let many = images.read_many(&[5, 0, 199, 5]);
        let sizes: Vec<usize> = many.into_iter().map(|b| b.unwrap().len()).collect();
        assert_eq!(sizes, [6, 1, 200, 6]);
        let missing = RemoteImages::new(
            RemoteLocation::open("memory://images/data").unwrap(),
            vec!["c/none.png".into()],
            1,
        );
        assert_eq!(
            missing.read(0).unwrap_err().to_string(),
            "memory://images/data/c/none.png does not exist"
        );
    }
}
