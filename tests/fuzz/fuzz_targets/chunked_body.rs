//! The chunked decoder on arbitrary bytes: never a panic, and the result does not depend
//! on how the input is split across reads (the first byte picks the split).
#![no_main]

use imprint::http::body::{ChunkError, ChunkedDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };
    let mut whole = Vec::new();
    let expected = decode_all(input, &mut whole);
    if let Ok(Some(used)) = expected {
        assert!(used <= input.len());
    }
    // The same input fed in two pieces, as two reads from a socket would give it.
    let cut = usize::from(split).min(input.len());
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut result = Ok(());
    'pieces: for piece in [&input[..cut], &input[cut..]] {
        let mut piece = piece;
        while !piece.is_empty() && !decoder.is_done() {
            match decoder.step(piece) {
                Ok(used) => piece = &piece[used..],
                Err(e) => {
                    result = Err(e);
                    break 'pieces;
                }
            }
            let take = decoder.data_remaining().min(piece.len() as u64) as usize;
            out.extend_from_slice(&piece[..take]);
            decoder.consume_data(take);
            piece = &piece[take..];
        }
    }
    match expected {
        Ok(Some(_)) => assert!(result.is_ok() && decoder.is_done() && out == whole),
        Ok(None) => assert!(result.is_ok() && !decoder.is_done() && out == whole),
        Err(e) => assert_eq!(result, Err(e)),
    }
});

/// The whole input decoded at once: the data, and how many input bytes the framing used
/// up; `Ok(None)` if the input ends before the body.
fn decode_all(mut input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, ChunkError> {
    let total = input.len();
    let mut decoder = ChunkedDecoder::default();
    loop {
        input = &input[decoder.step(input)?..];
        if decoder.is_done() {
            return Ok(Some(total - input.len()));
        }
        let take = decoder.data_remaining().min(input.len() as u64) as usize;
        if take == 0 {
            return Ok(None);
        }
        out.extend_from_slice(&input[..take]);
        decoder.consume_data(take);
        input = &input[take..];
    }
}
