// Reads topics back to their end and writes lines into topics, for scripts/resilience-test.sh.
// Compiled against the cached Kafka jars (scripts/services.sh fetches them); no other dependency.
//
//   dump BROKERS TOPIC...      every record of each topic, from the beginning to the end offsets
//                              taken at the start (no idle timeout to wait out, unlike Kafka's
//                              console consumer), one line per record:
//                              topic TAB partition TAB offset TAB reason TAB base64(value)
//                              reason: the x-telemetryd-reason header, "-" when absent. A topic
//                              that does not exist yields nothing (it is never auto-created).
//   create BROKERS PARTITIONS TOPIC...   creates the topics (replication 1); existing ones are
//                              left as they are
//   produce BROKERS TOPIC RATE lines of stdin, "key TAB value" (an empty key: no key), sent with
//                              acks=all and idempotence at about RATE per second (0: at once);
//                              exit 1 unless every record was acknowledged.
//
// Exit status 2 on usage errors, 1 when Kafka does not answer within 60 s.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class KafkaRecords {
  private static final Duration LIMIT = Duration.ofSeconds(60);

  public static void main(String[] args) throws Exception {
    if (args.length >= 3 && args[0].equals("dump")) {
      dump(args[1], List.of(args).subList(2, args.length));
    } else if (args.length >= 4 && args[0].equals("create")) {
      create(args[1], Integer.parseInt(args[2]), List.of(args).subList(3, args.length));
    } else if (args.length == 4 && args[0].equals("produce")) {
      System.exit(produce(args[1], args[2], Double.parseDouble(args[3])));
    } else {
      System.err.println("usage: KafkaRecords dump BROKERS TOPIC... | create BROKERS PARTITIONS TOPIC... | "
          + "produce BROKERS TOPIC RATE");
      System.exit(2);
    }
  }

  private static void create(String brokers, int partitions, List<String> topics)
      throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", brokers);
    try (Admin admin = Admin.create(p)) {
      List<NewTopic> wanted = new ArrayList<>();
      for (String topic : topics) wanted.add(new NewTopic(topic, partitions, (short) 1));
      for (Map.Entry<String, KafkaFuture<Void>> e : admin.createTopics(wanted).values().entrySet()) {
        try {
          e.getValue().get(LIMIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException ex) {
          if (!(ex.getCause() instanceof TopicExistsException)) throw ex;
        }
      }
    }
  }

  private static void dump(String brokers, List<String> topics) {
    Properties p = new Properties();
    p.put("bootstrap.servers", brokers);
    p.put("enable.auto.commit", "false");
    p.put("allow.auto.create.topics", "false");
    p.put("isolation.level", "read_uncommitted");
    p.put("max.poll.records", "5000");
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    long deadline = System.nanoTime() + LIMIT.toNanos();
    StringBuilder out = new StringBuilder(1 << 20);
    Base64.Encoder b64 = Base64.getEncoder();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      Map<String, List<PartitionInfo>> known = consumer.listTopics(LIMIT);
      List<TopicPartition> parts = new ArrayList<>();
      for (String topic : topics) {
        List<PartitionInfo> infos = known.get(topic);
        if (infos == null) continue;
        for (PartitionInfo info : infos) parts.add(new TopicPartition(topic, info.partition()));
      }
      if (parts.isEmpty()) return;
      Map<TopicPartition, Long> end = new HashMap<>(consumer.endOffsets(parts, LIMIT));
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      end.entrySet().removeIf(e -> consumer.position(e.getKey(), LIMIT) >= e.getValue());
      while (!end.isEmpty()) {
        if (System.nanoTime() > deadline) {
          System.err.println("KafkaRecords: not at the end offsets within " + LIMIT + ": " + end);
          System.exit(1);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          TopicPartition tp = new TopicPartition(r.topic(), r.partition());
          Long stop = end.get(tp);
          if (stop == null || r.offset() >= stop) continue;
          Header reason = r.headers().lastHeader("x-telemetryd-reason");
          out.append(r.topic()).append('\t').append(r.partition()).append('\t')
              .append(r.offset()).append('\t')
              .append(reason == null ? "-" : new String(reason.value(), StandardCharsets.UTF_8))
              .append('\t')
              .append(r.value() == null ? "" : b64.encodeToString(r.value())).append('\n');
        }
        end.entrySet().removeIf(e -> consumer.position(e.getKey(), LIMIT) >= e.getValue());
        if (out.length() > (1 << 20)) {
          System.out.print(out);
          out.setLength(0);
        }
      }
    } finally {
      System.out.print(out);
      System.out.flush();
    }
  }

  private static int produce(String brokers, String topic, double rate) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", brokers);
    p.put("acks", "all");
    p.put("enable.idempotence", "true");
    p.put("linger.ms", "5");
    p.put("delivery.timeout.ms", String.valueOf(LIMIT.toMillis()));
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    List<Future<RecordMetadata>> sent = new ArrayList<>();
    long start = System.nanoTime();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        java.io.BufferedReader in = new java.io.BufferedReader(
            new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        int tab = line.indexOf('\t');
        if (tab < 0) continue;
        byte[] key = tab == 0 ? null : line.substring(0, tab).getBytes(StandardCharsets.UTF_8);
        byte[] value = line.substring(tab + 1).getBytes(StandardCharsets.UTF_8);
        if (rate > 0) {
          long due = start + (long) (sent.size() * 1e9 / rate);
          long wait = due - System.nanoTime();
          if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
        }
        sent.add(producer.send(new ProducerRecord<>(topic, key, value)));
      }
      producer.flush();
    }
    int failed = 0;
    for (Future<RecordMetadata> f : sent) {
      try {
        f.get();
      } catch (Exception e) {
        if (failed++ == 0) System.err.println("KafkaRecords: not delivered: " + e.getMessage());
      }
    }
    System.err.println("KafkaRecords: " + (sent.size() - failed) + " of " + sent.size()
        + " records delivered to " + topic);
    return failed == 0 ? 0 : 1;
  }
}
