// librdkafka (Debian's librdkafka-dev). Constants that are macros in rdkafka.h, as values Swift sees.
#include <librdkafka/rdkafka.h>

static const int32_t foryou_rdkafka_partition_ua = RD_KAFKA_PARTITION_UA;
static const int64_t foryou_rdkafka_offset_beginning = RD_KAFKA_OFFSET_BEGINNING;
static const int64_t foryou_rdkafka_offset_end = RD_KAFKA_OFFSET_END;
static const int foryou_rdkafka_msg_f_copy = RD_KAFKA_MSG_F_COPY;
