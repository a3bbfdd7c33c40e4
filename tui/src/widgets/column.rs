//! Column widths that follow the terminal and what the column holds.

/// Fewest columns of a SERVICE column: its title.
const SERVICE_MIN: usize = "SERVICE".len();
/// Most columns of a SERVICE column on a narrow terminal, and on any terminal.
const SERVICE_MAX: (usize, usize) = (12, 32);

/// Columns of a SERVICE column in a table `width` columns wide whose longest service name
/// takes `longest` columns: as many as that name needs, so it is not cut while there is
/// room, but at most a sixth of the terminal (12 to 32 columns), so the message keeps the
/// most room.
pub fn service(longest: usize, width: usize) -> usize {
    let max = (width / 6).clamp(SERVICE_MAX.0, SERVICE_MAX.1);
    longest.clamp(SERVICE_MIN, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_column_fits_the_longest_name_up_to_a_share_of_the_terminal() {
        let long = "inference-server".len();
        assert_eq!(service(long, 80), 13);
        assert_eq!(service(long, 160), long);
        assert_eq!(service(3, 160), SERVICE_MIN);
        assert_eq!(service(100, 160), 26);
        assert_eq!(service(100, 400), 32);
        assert_eq!(service(100, 20), 12);
    }
}
