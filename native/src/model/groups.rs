//! `get_groups`: the seed's GroupNorm group count for a channel count.

/// Number of GroupNorm groups the seed uses for `channels` channels.
pub fn get_groups(channels: i64) -> i64 {
    match channels {
        c if c <= 8 => 1,
        c if c <= 16 => 2,
        c if c <= 32 => 4,
        c if c <= 64 => 8,
        c if c <= 128 => 16,
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::get_groups;

    #[test]
    fn table_matches_seed() {
        let rows = [
            (1, 1),
            (3, 1),
            (8, 1),
            (9, 2),
            (16, 2),
            (17, 4),
            (32, 4),
            (33, 8),
            (64, 8),
            (65, 16),
            (96, 16),
            (128, 16),
            (129, 32),
            (256, 32),
            (512, 32),
        ];
        for (c, g) in rows {
            assert_eq!(get_groups(c), g, "get_groups({c})");
        }
    }
}
